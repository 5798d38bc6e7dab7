"""REST API of the annotation app (for machines): batches and imports."""

from typing import Any, cast

from django.utils.datastructures import MultiValueDict
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import User
from accounts.permissions import IsLead
from annotation.forms import ImportForm
from annotation.jobs import start_import
from annotation.models import Batch, ImportJob


class BatchOut(serializers.ModelSerializer):
    taxonomy = serializers.SerializerMethodField()
    dialogues = serializers.IntegerField(source="n_dialogues")
    labels = serializers.IntegerField(source="n_labels")

    class Meta:
        model = Batch
        fields = [
            "name",
            "taxonomy",
            "labels_required",
            "needs_caution_policy",
            "asks_response_label",
            "status",
            "dialogues",
            "labels",
        ]

    def get_taxonomy(self, batch: Batch) -> str:
        return str(batch.taxonomy)


class BatchListView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(responses=BatchOut(many=True))
    def get(self, request: Request) -> Response:
        batches = (
            Batch.objects.with_counts().select_related("taxonomy").order_by("name")
        )
        user = cast(User, request.user)
        if not user.is_lead:
            batches = batches.filter(assignments__annotator=user)
        return Response(BatchOut(batches, many=True).data)


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
    file = serializers.FileField()
    batch = serializers.CharField(max_length=100)
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

    @extend_schema(request=ImportIn, responses={202: ImportJobOut})
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
            return Response(
                {"detail": "No such import."}, status=status.HTTP_404_NOT_FOUND
            )
        return Response(ImportJobOut(job).data)


class AgreementView(APIView):
    """The batch's agreement report (`manage.py agreement --json` has the same shape).

    200 with the report when it is current; 202 with `{"status", "requested_at"}`
    while a worker computes it (large batches), to be asked again; `?refresh=1`
    queues a new computation even when the batch is small.
    """

    permission_classes = [IsLead]

    @extend_schema(responses={200: dict, 202: dict})
    def get(self, request: Request, name: str) -> Response:
        from annotation.agreement import report_for
        from annotation.models import JobStatus

        batch = Batch.objects.filter(name=name).first()
        if batch is None:
            return Response(
                {"detail": f"no batch named {name!r}"}, status=status.HTTP_404_NOT_FOUND
            )
        report = report_for(batch, force_async=request.GET.get("refresh") == "1")
        if report.status == JobStatus.SUCCEEDED and report.data is not None:
            return Response(report.data)
        if report.status == JobStatus.FAILED:
            return Response(
                {"status": report.status, "error": report.error},
                status=status.HTTP_500_INTERNAL_SERVER_ERROR,
            )
        return Response(
            {
                "status": report.status,
                "requested_at": report.requested_at,
                "detail": "the report is being computed; ask again shortly",
            },
            status=status.HTTP_202_ACCEPTED,
        )
