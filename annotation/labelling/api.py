"""REST API of the annotator's workspace: consent, queue, votes, skips, flags.

The same services as the pages (`annotation.labelling.queue`); nothing here decides a rule.
Responses never carry another person's vote or a model's verdict.
"""

from typing import Any, cast

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.api_schema import HAS_TEXT, errors
from accounts.models import User
from annotation.labelling.progress import my_progress
from annotation.labelling.queue import (
    ConsentRequired,
    NothingToDo,
    VoteIn,
    acknowledge_warning,
    edit_label,
    flag_dialogue,
    reserve_next,
    skip_dialogue,
    submit_label,
)
from annotation.models import Dialogue, FlagReason, Label, LabelValue, Reservation


class ConsentGiven(BasePermission):
    """Nothing in the workspace API is served before the content warning is
    acknowledged (the services check it too)."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False  # IsAuthenticated answers 401 first
        if not getattr(user, "has_acknowledged_warning", False):
            refused = ConsentRequired()
            raise PermissionDenied({"detail": str(refused), "code": refused.code})
        return True


WORKSPACE = [IsAuthenticated, ConsentGiven]


class DialogueOut(serializers.ModelSerializer):
    batch = serializers.CharField(source="batch.name")

    class Meta:
        model = Dialogue
        fields = [
            "id",
            "external_id",
            "batch",
            "prompt",
            "response",
            "turns",
            "redacted",
        ]


class ReservationOut(serializers.ModelSerializer):
    class Meta:
        model = Reservation
        fields = ["reserved_at", "expires_at"]


class NextOut(serializers.Serializer):
    dialogue = DialogueOut()
    reservation = ReservationOut()
    asks_response_label = serializers.BooleanField()


class ConsentView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        request=None, responses={200: OpenApiResponse(description="Recorded")}
    )
    def post(self, request: Request) -> Response:
        user = acknowledge_warning(annotator=cast(User, request.user))
        return Response({"acknowledged_at": user.content_warning_acknowledged_at})


class QueueNextView(APIView):
    permission_classes = WORKSPACE

    @extend_schema(
        request=None,
        responses={
            200: NextOut,
            204: OpenApiResponse(description="Nothing left to label"),
        },
    )
    def post(self, request: Request) -> Response:
        result = reserve_next(annotator=cast(User, request.user))
        if isinstance(result, NothingToDo):
            # 204 has no body; the reason (done, daily_cap, no_batch) rides in headers.
            return Response(
                status=status.HTTP_204_NO_CONTENT,
                headers={"Aegis-Queue-Reason": result.reason},
            )
        data = {
            "dialogue": result.dialogue,
            "reservation": result,
            "asks_response_label": result.batch.asks_response_label,
        }
        return Response(NextOut(data).data)


class VoteFields(serializers.Serializer):
    label = serializers.ChoiceField(choices=LabelValue.choices)  # type: ignore[assignment]  # the field is called label
    response_label = serializers.ChoiceField(
        choices=LabelValue.choices, required=False, allow_null=True, default=None
    )
    categories = serializers.ListField(
        child=serializers.CharField(max_length=100, validators=[HAS_TEXT]),
        required=False,
        default=list,
    )
    other_text = serializers.CharField(required=False, allow_blank=True, default="")
    comment = serializers.CharField(required=False, allow_blank=True, default="")

    def vote(self) -> VoteIn:
        d: dict[str, Any] = self.validated_data
        return VoteIn(
            label=d["label"],
            response_label=d["response_label"],
            categories=tuple(d["categories"]),
            other_text=d["other_text"],
            comment=d["comment"],
        )


class LabelIn(VoteFields):
    dialogue = serializers.IntegerField()
    time_spent_ms = serializers.IntegerField(
        required=False, allow_null=True, min_value=0
    )


class LabelOut(serializers.ModelSerializer):
    categories = serializers.SerializerMethodField()

    class Meta:
        model = Label
        fields = [
            "id",
            "dialogue",
            "label",
            "response_label",
            "categories",
            "other_text",
            "comment",
            "time_spent_ms",
            "created_at",
            "updated_at",
        ]

    def get_categories(self, label: Label) -> list[str]:
        if label.category_names is not None:  # just written by a service
            return label.category_names
        return [lc.category.name for lc in label.label_categories.all()]  # prefetched


class LabelListCreateView(APIView):
    permission_classes = WORKSPACE

    @extend_schema(responses=LabelOut(many=True))
    def get(self, request: Request) -> Response:
        """My most recent votes (never anyone else's)."""
        user = cast(User, request.user)
        labels = (
            Label.objects.human()
            .filter(annotator=user)
            .prefetch_related("label_categories__category")
            .order_by("-created_at")[:100]
        )
        return Response(LabelOut(labels, many=True).data)

    @extend_schema(
        request=LabelIn,
        responses={201: LabelOut, **errors(404, 409)},
        description="404: no such dialogue; 409: not reserved for me, already "
        "labelled, or adjudicated.",
    )
    def post(self, request: Request) -> Response:
        incoming = LabelIn(data=request.data)
        incoming.is_valid(raise_exception=True)
        label = submit_label(
            annotator=cast(User, request.user),
            dialogue_id=incoming.validated_data["dialogue"],
            vote=incoming.vote(),
            time_spent_ms=incoming.validated_data.get("time_spent_ms"),
        )
        return Response(LabelOut(label).data, status=201)


class LabelEditView(APIView):
    permission_classes = WORKSPACE

    @extend_schema(
        request=VoteFields,
        responses={200: LabelOut, **errors(409)},
        description="409: someone else's label, or the dialogue is adjudicated.",
    )
    def put(self, request: Request, pk: int) -> Response:
        """Change my own vote (kept in its history) until the dialogue is adjudicated."""
        incoming = VoteFields(data=request.data)
        incoming.is_valid(raise_exception=True)
        label = edit_label(
            annotator=cast(User, request.user), label_id=pk, vote=incoming.vote()
        )
        return Response(LabelOut(label).data)


class SkipIn(serializers.Serializer):
    dialogue = serializers.IntegerField()
    reason = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=500
    )


class SkipView(APIView):
    permission_classes = WORKSPACE

    @extend_schema(
        request=SkipIn,
        responses={200: OpenApiResponse(description="Skipped"), **errors(404, 409)},
    )
    def post(self, request: Request) -> Response:
        incoming = SkipIn(data=request.data)
        incoming.is_valid(raise_exception=True)
        skip_dialogue(
            annotator=cast(User, request.user),
            dialogue_id=incoming.validated_data["dialogue"],
            reason=incoming.validated_data["reason"],
        )
        return Response({"skipped": incoming.validated_data["dialogue"]})


class FlagIn(serializers.Serializer):
    dialogue = serializers.IntegerField()
    reason = serializers.ChoiceField(choices=FlagReason.choices)
    note = serializers.CharField(required=False, allow_blank=True, default="")


class FlagView(APIView):
    permission_classes = WORKSPACE

    @extend_schema(
        request=FlagIn,
        responses={201: OpenApiResponse(description="Flagged"), **errors(404, 409)},
    )
    def post(self, request: Request) -> Response:
        incoming = FlagIn(data=request.data)
        incoming.is_valid(raise_exception=True)
        flag = flag_dialogue(
            annotator=cast(User, request.user),
            dialogue_id=incoming.validated_data["dialogue"],
            reason=incoming.validated_data["reason"],
            note=incoming.validated_data["note"],
        )
        return Response(
            {"dialogue": flag.dialogue_id, "reason": flag.reason}, status=201
        )


class ProgressView(APIView):
    permission_classes = WORKSPACE

    @extend_schema(
        responses={200: OpenApiResponse(description="today, total, per batch")}
    )
    def get(self, request: Request) -> Response:
        progress = my_progress(cast(User, request.user))
        return Response(
            {
                "today": progress.today,
                "total": progress.total,
                "daily_cap": progress.daily_cap,
                "batches": [
                    {"batch": b.name, "mine": b.mine, "dialogues": b.dialogues}
                    for b in progress.batches
                ],
            }
        )
