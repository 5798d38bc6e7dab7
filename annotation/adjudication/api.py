"""REST API of adjudication (for machines; leads only): the queue, one dialogue with
its votes and decisions, deciding, reopening, and accepting a batch's unanimous
dialogues in bulk.

The same services as the pages (`annotation.adjudication.services`); nothing here decides a
rule. A refused decision answers 400 with the fields' problems, or 409 naming the
lead who decided first, with the refused input returned as it was sent.
"""

from dataclasses import asdict
from typing import Any, cast

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.api_schema import HAS_TEXT, ErrorOut, PageIn, errors
from accounts.models import User
from accounts.permissions import IsLead
from accounts.refusals import NotFound
from annotation.adjudication.forms import DECISION_REASONS
from annotation.adjudication.services import (
    REASONS,
    AdjudicationConflict,
    DecisionIn,
    accept_unanimous,
    adjudicate,
    dialogue_case,
    queue_rows,
    read_queue,
    reopen,
)
from annotation.models import (
    Adjudication,
    Batch,
    Confidence,
    Dialogue,
    FinalLabel,
    Flag,
    JuryDecision,
    Label,
    LabelValue,
)


def _conflict(error: AdjudicationConflict) -> Response:
    """A second lead's decision: the refusal with the decision in force and theirs."""
    body: dict[str, Any] = error.body()
    body["current"] = (
        AdjudicationOut(error.current).data if error.current is not None else None
    )
    body["submitted"] = asdict(error.submitted) | {
        "categories": list(error.submitted.categories)
    }
    return Response(body, status=error.status)


# --- output ---------------------------------------------------------------------------


class AdjudicationOut(serializers.ModelSerializer):
    lead = serializers.CharField(source="lead.username")
    reopened_by = serializers.CharField(
        source="reopened_by.username", allow_null=True, default=None
    )
    is_current = serializers.BooleanField()

    class Meta:
        model = Adjudication
        fields = [
            "id",
            "dialogue",
            "lead",
            "prompt_label",
            "response_label",
            "categories",
            "confidence",
            "reason",
            "note",
            "guideline_update",
            "created_at",
            "is_current",
            "reopened_at",
            "reopened_by",
        ]


class FinalLabelOut(serializers.ModelSerializer):
    class Meta:
        model = FinalLabel
        fields = [
            "prompt_label",
            "response_label",
            "violated_categories",
            "prompt_label_source",
            "response_label_source",
            "provenance",
            "unresolved_reason",
            "computed_at",
        ]


class _VoteCategories(serializers.ModelSerializer):
    categories = serializers.SerializerMethodField()

    def get_categories(self, vote: Label) -> list[str]:
        return vote.ordered_category_names()  # set by `dialogue_case`: no query


class HumanVoteOut(_VoteCategories):
    annotator = serializers.CharField(source="annotator.username")

    class Meta:
        model = Label
        fields = [
            "id",
            "annotator",
            "label",
            "response_label",
            "categories",
            "other_text",
            "comment",
            "time_spent_ms",
            "created_at",
        ]


class JudgeVoteOut(_VoteCategories):
    class Meta:
        model = Label
        fields = [
            "id",
            "judge",
            "run_key",
            "valid",
            "label",
            "categories",
            "raw_output",
            "details",
            "latency_ms",
            "created_at",
        ]


class ReferenceOut(_VoteCategories):
    class Meta:
        model = Label
        fields = [
            "id",
            "label",
            "response_label",
            "categories",
            "prompt_label_source",
            "response_label_source",
        ]


class JuryDecisionOut(serializers.ModelSerializer):
    class Meta:
        model = JuryDecision
        fields = [
            "run_key",
            "decision",
            "categories",
            "valid_votes",
            "total_votes",
            "agreement",
            "reason",
            "decided_at",
        ]


class FlagOut(serializers.ModelSerializer):
    annotator = serializers.CharField(source="annotator.username")

    class Meta:
        model = Flag
        fields = ["id", "annotator", "reason", "note", "created_at"]


class CaseDialogueOut(serializers.ModelSerializer):
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
            "is_gold",
            "adjudicated_at",
        ]


class CaseOut(serializers.Serializer):
    dialogue = CaseDialogueOut()
    version = serializers.IntegerField(
        help_text="Pass back as expected_version when deciding."
    )
    final_label = FinalLabelOut(allow_null=True)
    human_votes = HumanVoteOut(many=True)
    jury_votes = JudgeVoteOut(many=True)
    references = ReferenceOut(many=True)
    jury_decisions = JuryDecisionOut(many=True)
    open_flags = FlagOut(many=True)
    history = AdjudicationOut(many=True)


class QueueItemOut(serializers.Serializer):
    dialogue = serializers.IntegerField()
    external_id = serializers.CharField()
    batch = serializers.CharField()
    reasons = serializers.ListField(child=serializers.ChoiceField(choices=REASONS))
    agreement = serializers.FloatField(allow_null=True)
    categories = serializers.ListField(child=serializers.CharField())
    votes = serializers.DictField(child=serializers.IntegerField())
    jury = serializers.CharField(allow_null=True)
    prompt_excerpt = serializers.CharField()
    human_votes = serializers.IntegerField()
    votes_required = serializers.IntegerField()


class QueuePageOut(serializers.Serializer):
    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    waiting_for_votes = serializers.IntegerField(
        help_text="Dialogues left out: they would need a lead, but their human votes "
        "are not all in (include_incomplete=true lists them)."
    )
    results = QueueItemOut(many=True)


class DecidedOut(serializers.Serializer):
    adjudication = AdjudicationOut()
    final_label = FinalLabelOut(allow_null=True)


class ConflictOut(ErrorOut):
    current = AdjudicationOut(allow_null=True)
    submitted = serializers.DictField(help_text="The decision as it was sent.")


class AcceptedOut(serializers.Serializer):
    batch = serializers.CharField()
    accepted = serializers.IntegerField()


# --- input ----------------------------------------------------------------------------


class QueueQueryIn(PageIn):
    batch = serializers.CharField(
        required=False, validators=[HAS_TEXT], help_text="A batch name."
    )
    category = serializers.CharField(
        required=False,
        validators=[HAS_TEXT],
        help_text="A category name of the final label.",
    )
    reason = serializers.ChoiceField(choices=REASONS, required=False)
    include_incomplete = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Also list dialogues whose human votes are not all in yet.",
    )

    def validate_batch(self, name: str) -> Batch:
        batch = Batch.objects.filter(name=name).first()
        if batch is None:  # a name, as in a path: 404 (a refusal, not a field error)
            raise NotFound(f"no batch named {name!r}")
        return batch


class DecisionInSerializer(serializers.Serializer):
    prompt_label = serializers.ChoiceField(choices=LabelValue.choices)
    response_label = serializers.ChoiceField(
        choices=LabelValue.choices,
        required=False,
        allow_null=True,
        default=None,
        help_text="Empty leaves the response to the rules of DESIGN section 3.",
    )
    categories = serializers.ListField(
        child=serializers.CharField(max_length=100, validators=[HAS_TEXT]),
        required=False,
        default=list,
    )
    confidence = serializers.ChoiceField(choices=Confidence.choices)
    reason = serializers.ChoiceField(choices=DECISION_REASONS)
    note = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=4000
    )
    guideline_update = serializers.BooleanField(required=False, default=False)
    expected_version = serializers.IntegerField(
        required=False,
        allow_null=True,
        default=None,
        min_value=0,
        help_text="`version` as read with GET; a decision made or reopened since "
        "answers 409.",
    )

    def decision(self) -> DecisionIn:
        d: dict[str, Any] = self.validated_data
        return DecisionIn(
            prompt_label=d["prompt_label"],
            response_label=d["response_label"],
            categories=tuple(d["categories"]),
            confidence=d["confidence"],
            reason=d["reason"],
            note=d["note"],
            guideline_update=d["guideline_update"],
        )


# --- views ----------------------------------------------------------------------------


class QueueView(APIView):
    permission_classes = [IsLead]

    @extend_schema(
        parameters=[QueueQueryIn],
        responses={200: QueuePageOut, **errors(404)},
        description="404: no batch has the name `batch`.",
    )
    def get(self, request: Request) -> Response:
        """The dialogues that need a lead, lowest agreement first (`limit`, `offset`)."""
        query = QueueQueryIn(data=request.query_params)
        query.is_valid(raise_exception=True)
        filters: dict[str, Any] = query.validated_data
        queue = read_queue(
            batch=filters.get("batch"),
            category=filters.get("category") or None,
            reason=filters.get("reason") or None,
            include_incomplete=filters["include_incomplete"],
        )
        paginator = LimitOffsetPagination()
        page = paginator.paginate_queryset(queue.items, request, view=self) or []
        rows = queue_rows([item.dialogue_id for item in page])
        results = [
            {
                "dialogue": item.dialogue_id,
                "external_id": rows[item.dialogue_id].external_id,
                "batch": item.batch,
                "reasons": item.reasons,
                "agreement": item.agreement,
                "categories": item.categories,
                "votes": rows[item.dialogue_id].votes,
                "jury": rows[item.dialogue_id].jury,
                "prompt_excerpt": rows[item.dialogue_id].prompt_excerpt,
                "human_votes": item.votes,
                "votes_required": item.required,
            }
            for item in page
            if item.dialogue_id in rows
        ]
        response = paginator.get_paginated_response(
            QueueItemOut(results, many=True).data
        )
        response.data["waiting_for_votes"] = queue.waiting
        return response


class CaseView(APIView):
    permission_classes = [IsLead]

    @extend_schema(responses=CaseOut)
    def get(self, request: Request, dialogue_id: int) -> Response:
        """The dialogue with every vote, the jury's decisions, open flags, the
        decision history and the final label."""
        case = dialogue_case(dialogue_id)
        if case is None:
            raise NotFound("No such dialogue.")
        data = {
            "dialogue": case.dialogue,
            "version": case.version,
            "final_label": case.final_label,
            "human_votes": case.human_votes,
            "jury_votes": case.jury_votes,
            "references": case.references,
            "jury_decisions": case.jury_decisions,
            "open_flags": case.open_flags,
            "history": case.history,
        }
        return Response(CaseOut(data).data)

    @extend_schema(
        request=DecisionInSerializer,
        responses={
            201: DecidedOut,
            409: OpenApiResponse(
                ConflictOut,
                description="Decided by another lead (named), or changed since "
                "expected_version; `submitted` returns the input",
            ),
        },
    )
    def post(self, request: Request, dialogue_id: int) -> Response:
        """Decide the dialogue's final labels."""
        if not Dialogue.objects.filter(pk=dialogue_id).exists():
            raise NotFound("No such dialogue.")
        incoming = DecisionInSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        try:
            adjudication = adjudicate(
                dialogue_id=dialogue_id,
                lead=cast(User, request.user),
                **asdict(incoming.decision()),
                expected_version=incoming.validated_data["expected_version"],
            )
        except AdjudicationConflict as conflict:
            return _conflict(conflict)
        # Derived again when the decision committed (no transaction wraps requests).
        final = FinalLabel.objects.filter(dialogue_id=dialogue_id).first()
        body = {"adjudication": adjudication, "final_label": final}
        return Response(DecidedOut(body).data, status=status.HTTP_201_CREATED)


class ReopenView(APIView):
    permission_classes = [IsLead]

    @extend_schema(
        request=None,
        responses={
            200: AdjudicationOut,
            409: OpenApiResponse(ErrorOut, description="No decision in force"),
        },
    )
    def post(self, request: Request, dialogue_id: int) -> Response:
        """Take the decision in force back (it stays in the history)."""
        if not Dialogue.objects.filter(pk=dialogue_id).exists():
            raise NotFound("No such dialogue.")
        reopened = reopen(dialogue_id=dialogue_id, lead=cast(User, request.user))
        return Response(AdjudicationOut(reopened).data)


class AcceptUnanimousView(APIView):
    permission_classes = [IsLead]

    @extend_schema(
        request=None,
        responses=AcceptedOut,
    )
    def post(self, request: Request, name: str) -> Response:
        """Accept every unanimous, undecided dialogue of the batch as labelled."""
        batch = Batch.objects.select_related("taxonomy").filter(name=name).first()
        if batch is None:
            raise NotFound(f"no batch named {name!r}")
        accepted = accept_unanimous(batch=batch, lead=cast(User, request.user))
        return Response(AcceptedOut({"batch": batch.name, "accepted": accepted}).data)
