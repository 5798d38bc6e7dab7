"""The imports API (leads): start an import of an uploaded file, poll it."""

from typing import Any, cast

from django.utils.datastructures import MultiValueDict
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.api_schema import HAS_TEXT, UploadField
from accounts.models import User
from accounts.permissions import IsLead
from accounts.refusals import NotFound
from annotation.imports.forms import ImportForm
from annotation.imports.jobs import start_import
from annotation.models import ImportJob


class ImportJobOut(serializers.ModelSerializer):
    percent = serializers.IntegerField()
    batch = serializers.CharField(source="batch_name")

    class Meta:
        model = ImportJob
        fields = [
            "id",
            "kind",
            "batch",
            "format",
            "original_name",
            "status",
            "phase",
            "rows_total",
            "rows_read",
            "percent",
            "imported",
            "skipped_duplicates",
            "error_count",
            "errors",
            "created_at",
            "started_at",
            "finished_at",
        ]


class ImportIn(serializers.Serializer):
    file = UploadField()
    batch = serializers.CharField(max_length=100, validators=[HAS_TEXT])
    kind = serializers.ChoiceField(choices=["dialogues", "labels"], default="dialogues")
    format = serializers.CharField(required=False, allow_blank=True, default="")
    create_batch = serializers.BooleanField(default=False)
    skip_invalid = serializers.BooleanField(default=False)
    create_annotators = serializers.BooleanField(default=False)
    transcript = serializers.ChoiceField(
        choices=["chosen", "rejected"], default="chosen"
    )
    first_turn_only = serializers.BooleanField(default=False)


class ImportCreateView(APIView):
    permission_classes = [IsLead]
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        request={"multipart/form-data": ImportIn}, responses={202: ImportJobOut}
    )
    def post(self, request: Request) -> Response:
        incoming = ImportIn(data=request.data)
        incoming.is_valid(raise_exception=True)
        data: dict[str, Any] = dict(incoming.validated_data)
        # The HTML form holds the rules (batch exists, format known, size): reuse them.
        form = ImportForm(
            {k: v for k, v in data.items() if k != "file" and v not in (False, None)},
            MultiValueDict({"file": [data["file"]]}),
        )
        if not form.is_valid():
            return Response(form.errors, status=status.HTTP_400_BAD_REQUEST)
        job = start_import(**form.job_arguments(), by=cast(User, request.user))
        return Response(ImportJobOut(job).data, status=status.HTTP_202_ACCEPTED)


class ImportDetailView(APIView):
    permission_classes = [IsLead]

    @extend_schema(responses=ImportJobOut)
    def get(self, request: Request, pk: int) -> Response:
        job = ImportJob.objects.filter(pk=pk).first()
        if job is None:
            raise NotFound("No such import.")
        return Response(ImportJobOut(job).data)
