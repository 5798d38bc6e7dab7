"""REST API of exports (for machines): list, start (admins), poll and download.

The same service as the pages (`annotation.export.services.start_export`, through
`export_forms.start_export_from` for an uploaded topic file); a refused export
answers 400 naming the parameter, as the form does.
"""

from typing import Any, cast

from django import forms
from django.http import FileResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.api_schema import HAS_TEXT, ErrorOut, PageIn, UploadField
from accounts.models import User
from accounts.permissions import IsLead
from accounts.refusals import NotFound
from annotation.export.forms import (
    check_topic_upload,
    start_export_from,
)
from annotation.export.services import ExportParams
from annotation.export.views import zip_response
from annotation.models import ExportSnapshot, JobStatus, NeedsCautionPolicy
from annotation.rules.splits import DEFAULT_RATIOS


class ExportOut(serializers.ModelSerializer):
    batches = serializers.ListField(source="batch_names", child=serializers.CharField())
    ratios = serializers.ListField(child=serializers.FloatField())
    topic_file = serializers.CharField(source="topic_name")
    percent = serializers.IntegerField()
    finished = serializers.BooleanField()
    created_by = serializers.CharField(
        source="created_by.username", allow_null=True, default=None
    )
    url = serializers.SerializerMethodField()
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = ExportSnapshot
        fields = [
            "id",
            "url",
            "batches",
            "seed",
            "ratios",
            "needs_caution_policy",
            "include_refusals",
            "topic_file",
            "status",
            "phase",
            "steps_done",
            "steps_total",
            "percent",
            "finished",
            "counts",
            "error",
            "manifest_sha256",
            "download_url",
            "created_by",
            "created_at",
            "started_at",
            "finished_at",
        ]

    def _absolute(self, path: str) -> str:
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request is not None else path

    def get_url(self, snapshot: ExportSnapshot) -> str:
        return self._absolute(reverse("api:export-detail", args=[snapshot.pk]))

    def get_download_url(self, snapshot: ExportSnapshot) -> str | None:
        if snapshot.status != JobStatus.SUCCEEDED:
            return None
        return self._absolute(reverse("api:export-download", args=[snapshot.pk]))


class ExportPageOut(serializers.Serializer):
    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = ExportOut(many=True)


class ExportIn(serializers.Serializer):
    batches = serializers.ListField(
        child=serializers.CharField(max_length=100, validators=[HAS_TEXT]),
        min_length=1,
        error_messages={"min_length": "choose at least one batch"},
    )
    seed = serializers.IntegerField(min_value=0, default=0)
    ratios = serializers.ListField(
        child=serializers.FloatField(),
        min_length=3,
        max_length=3,
        default=list(DEFAULT_RATIOS),
    )
    needs_caution_policy = serializers.ChoiceField(
        choices=NeedsCautionPolicy.choices,
        allow_blank=True,
        default="",
        help_text="Empty: each batch's own policy.",
    )
    include_refusals = serializers.BooleanField(default=True)
    topic_file = UploadField(
        required=False,
        help_text="A CantTalkAboutThis JSON or JSONL file (multipart requests only).",
    )

    def validate_topic_file(self, upload: Any) -> Any:
        try:
            check_topic_upload(upload)
        except forms.ValidationError as exc:
            raise serializers.ValidationError(exc.messages) from None
        return upload


class ExportListView(APIView):
    permission_classes = [IsLead]
    parser_classes = [JSONParser, MultiPartParser, FormParser]

    @extend_schema(
        operation_id="v1_exports_list",
        parameters=[PageIn],
        responses=ExportPageOut,
    )
    def get(self, request: Request) -> Response:
        """Snapshots, newest first (leads and admins)."""
        PageIn(data=request.query_params).is_valid(raise_exception=True)
        snapshots = ExportSnapshot.objects.select_related("created_by")
        paginator = LimitOffsetPagination()
        page = paginator.paginate_queryset(snapshots, request, view=self) or []
        data = ExportOut(page, many=True, context={"request": request}).data
        return paginator.get_paginated_response(data)

    @extend_schema(
        request={"application/json": ExportIn, "multipart/form-data": ExportIn},
        responses={
            201: ExportOut,
        },
    )
    def post(self, request: Request) -> Response:
        """Start an export (admins): 201 with the snapshot; poll its `url`."""
        user = cast(User, request.user)
        if not user.is_admin_role:
            raise PermissionDenied("Only admins may start exports.")
        incoming = ExportIn(data=request.data)
        incoming.is_valid(raise_exception=True)
        data = incoming.validated_data
        params = ExportParams(
            batches=tuple(data["batches"]),
            seed=data["seed"],
            ratios=tuple(data["ratios"]),
            needs_caution_policy=data["needs_caution_policy"],
            include_refusals=data["include_refusals"],
        )
        snapshot = start_export_from(
            params=params, upload=data.get("topic_file"), user=user
        )
        return Response(
            ExportOut(snapshot, context={"request": request}).data,
            status=status.HTTP_201_CREATED,
        )


class ExportDetailView(APIView):
    permission_classes = [IsLead]

    @extend_schema(responses={200: ExportOut})
    def get(self, request: Request, pk: int) -> Response:
        """One snapshot: its status, phase and percent while it runs; its counts,
        errors and `download_url` once finished."""
        snapshot = (
            ExportSnapshot.objects.select_related("created_by").filter(pk=pk).first()
        )
        if snapshot is None:
            raise NotFound("No such export.")
        return Response(ExportOut(snapshot, context={"request": request}).data)


class AnyAccept(BaseContentNegotiation):
    """A download is a zip whatever the client accepts (`Accept: application/zip`
    would otherwise be refused with 406); refusals are JSON."""

    def select_parser(self, request: Request, parsers: Any) -> Any:
        return parsers[0]

    def select_renderer(
        self, request: Request, renderers: Any, format_suffix: str | None = None
    ) -> tuple[Any, str]:
        return renderers[0], renderers[0].media_type


class ExportDownloadView(APIView):
    permission_classes = [IsLead]
    content_negotiation_class = AnyAccept

    @extend_schema(
        responses={
            (200, "application/zip"): OpenApiTypes.BINARY,
            404: OpenApiResponse(
                ErrorOut, description="No such export, or not written yet."
            ),
        }
    )
    def get(self, request: Request, pk: int) -> FileResponse | Response:
        """The snapshot's zip; 404 until the export has succeeded."""
        snapshot = ExportSnapshot.objects.filter(pk=pk).first()
        if snapshot is None:
            raise NotFound("No such export.")
        return zip_response(snapshot)
