"""Forms of the adjudication pages: the queue's filters and a lead's decision (input
checks only; the rules live in `annotation.adjudication.services`)."""

from collections.abc import Sequence
from typing import Any

from django import forms

from annotation.adjudication.services import (
    FLAGGED,
    HUMANS_VS_JURY,
    JURY_NEEDS_REVIEW,
    SPLIT,
    TIE,
    DecisionIn,
)
from annotation.models import AdjudicationReason, Batch, Confidence, LabelValue

# How the queue's reasons read on the pages, in `adjudication.REASONS` order.
REASON_LABELS = {
    TIE: "Tie",
    SPLIT: "Split",
    HUMANS_VS_JURY: "Humans vs jury",
    JURY_NEEDS_REVIEW: "Jury needs review",
    FLAGGED: "Flagged",
}
# A lead chooses among these; "unanimous_accepted" is the bulk acceptance's own.
DECISION_REASONS = [
    (value, label)
    for value, label in AdjudicationReason.choices
    if value != AdjudicationReason.UNANIMOUS_ACCEPTED
]


class QueueFilterForm(forms.Form):
    """The queue's filters (a GET form); a value that is not offered is an error and
    is not applied."""

    batch = forms.ModelChoiceField(
        queryset=Batch.objects.order_by("name"),
        to_field_name="name",
        required=False,
        empty_label="All batches",
    )
    category = forms.ChoiceField(required=False)
    reason = forms.ChoiceField(
        required=False,
        choices=[("", "Any reason"), *REASON_LABELS.items()],
    )
    incomplete = forms.BooleanField(
        required=False, label="Also dialogues still waiting for votes"
    )

    def __init__(self, *args: Any, category_names: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["category"].choices = [  # type: ignore[attr-defined]
            ("", "Any category"),
            *((name, name) for name in category_names),
        ]

    def filters(self) -> dict[str, Any]:
        """The keyword arguments of `adjudication_queue`: the valid filters only."""
        self.is_valid()
        data = getattr(self, "cleaned_data", {})
        return {
            "batch": data.get("batch") or None,
            "category": data.get("category") or None,
            "reason": data.get("reason") or None,
            "include_incomplete": bool(data.get("incomplete")),
        }


class DecisionForm(forms.Form):
    """A lead's decision, as the page posts it and shows it back."""

    prompt_label = forms.ChoiceField(
        choices=LabelValue.choices,
        error_messages={"required": "Choose safe, needs caution or unsafe."},
    )
    response_label = forms.ChoiceField(
        choices=LabelValue.choices,
        required=False,
    )
    categories = forms.MultipleChoiceField(required=False)
    confidence = forms.ChoiceField(
        choices=Confidence.choices,
        error_messages={"required": "Choose low, medium or high."},
    )
    reason = forms.ChoiceField(
        choices=DECISION_REASONS,
        error_messages={"required": "Say why the votes needed you."},
    )
    note = forms.CharField(required=False, max_length=4000)
    guideline_update = forms.BooleanField(required=False)
    expected_version = forms.IntegerField(required=False, min_value=0)
    # The dialogue to go on to afterwards (the one after this in the queue).
    next = forms.IntegerField(required=False, min_value=1)

    # The fields whose errors the page shows beside them; the others' errors (and
    # the form's own) are listed at the top.
    ERRORS_BESIDE = (
        "prompt_label",
        "response_label",
        "categories",
        "confidence",
        "reason",
    )

    def __init__(
        self,
        *args: Any,
        has_response: bool,
        category_names: Sequence[str] = (),
        **kwargs: Any,
    ) -> None:
        # `category_names`: those a decision may choose (a form only shown back
        # checks nothing and needs none).
        super().__init__(*args, **kwargs)
        self.fields["categories"].choices = [(n, n) for n in category_names]  # type: ignore[attr-defined]
        self.has_response = has_response

    def clean_response_label(self) -> str:
        # Empty leaves the response to the rules (DESIGN section 3); a dialogue
        # without a response has no such field on the page.
        value: str = self.cleaned_data["response_label"]
        return value if self.has_response else ""

    def decision(self) -> DecisionIn:
        d = self.cleaned_data
        return DecisionIn(
            prompt_label=d["prompt_label"],
            response_label=d["response_label"] or None,
            categories=tuple(d["categories"]),
            confidence=d["confidence"],
            reason=d["reason"],
            note=d["note"],
            guideline_update=d["guideline_update"],
        )

    def errors_at_top(self) -> list[str]:
        """The messages of the fields that show no errors of their own, and the
        form's."""
        return [
            str(message)
            for field, messages in self.errors.items()
            if field not in self.ERRORS_BESIDE
            for message in messages
        ]

    def unchecked(self) -> "DecisionForm":
        """What was posted, as the values of a new form that checks nothing (a
        decision kept in the form after a reopen, ready to submit)."""
        initial = {name: self[name].value() for name in self.fields}
        return DecisionForm(initial=initial, has_response=self.has_response)
