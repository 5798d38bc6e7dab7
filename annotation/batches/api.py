"""The batches API: the batches a person may see, with their counts."""

from typing import cast

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import User
from annotation.models import Batch


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
