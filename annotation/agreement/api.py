"""The agreement API (leads): a batch's agreement report."""

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import IsLead
from annotation.agreement.services import report_for
from annotation.models import Batch, JobStatus


class AgreementView(APIView):
    """The batch's agreement report (`manage.py agreement --json` has the same shape).

    200 with the report when it is current; 202 with `{"status", "requested_at"}`
    while a worker computes it (large batches), to be asked again; `?refresh=1`
    queues a new computation even when the batch is small.
    """

    permission_classes = [IsLead]

    @extend_schema(responses={200: dict, 202: dict})
    def get(self, request: Request, name: str) -> Response:
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
