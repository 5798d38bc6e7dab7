"""The agreement API (leads): a batch's agreement report."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import IsLead
from accounts.refusals import NotFound
from annotation.agreement.services import report_for
from annotation.models import Batch, JobStatus


class AgreementQueryIn(serializers.Serializer):
    refresh = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Queue a new computation even when the batch is small.",
    )


class AgreementView(APIView):
    """The batch's agreement report (`manage.py agreement --json` has the same shape).

    200 with the report when it is current; 202 with `{"status", "requested_at"}`
    while a worker computes it (large batches), to be asked again; `?refresh=1`
    queues a new computation even when the batch is small; 500 with `{"status",
    "error"}` when the computation failed.
    """

    permission_classes = [IsLead]

    @extend_schema(
        parameters=[AgreementQueryIn],
        responses={
            200: OpenApiResponse(OpenApiTypes.OBJECT, description="The report"),
            202: OpenApiResponse(OpenApiTypes.OBJECT, description="Being computed"),
            500: OpenApiResponse(OpenApiTypes.OBJECT, description="It failed"),
        },
    )
    def get(self, request: Request, name: str) -> Response:
        query = AgreementQueryIn(data=request.query_params)
        query.is_valid(raise_exception=True)
        batch = Batch.objects.filter(name=name).first()
        if batch is None:
            raise NotFound(f"no batch named {name!r}")
        report = report_for(batch, force_async=query.validated_data["refresh"])
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
