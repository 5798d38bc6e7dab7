"""The annotator's vote form: parsing only; the rules are in `annotation.labelling.queue`."""

from collections.abc import Sequence
from typing import Any

from django import forms

from annotation.labelling.queue import VoteIn
from annotation.models import FlagReason, LabelValue


class VoteForm(forms.Form):
    label = forms.ChoiceField(
        choices=LabelValue.choices,
        error_messages={"required": "Choose safe, needs caution or unsafe."},
    )
    response_label = forms.ChoiceField(choices=LabelValue.choices, required=False)
    categories = forms.MultipleChoiceField(required=False)
    other_text = forms.CharField(required=False, max_length=500)
    comment = forms.CharField(required=False, max_length=2000)
    time_spent_ms = forms.IntegerField(required=False, min_value=0)

    def __init__(
        self, *args: Any, category_names: Sequence[str] = (), **kwargs: Any
    ) -> None:
        # `category_names`: those a vote may choose (a form only shown, an empty
        # vote or a label to edit, checks nothing and needs none).
        super().__init__(*args, **kwargs)
        self.fields["categories"].choices = [(n, n) for n in category_names]  # type: ignore[attr-defined]

    def vote(self) -> VoteIn:
        d = self.cleaned_data
        return VoteIn(
            label=d["label"],
            response_label=d["response_label"] or None,
            categories=tuple(d["categories"]),
            other_text=d["other_text"],
            comment=d["comment"],
        )


class SkipForm(forms.Form):
    reason = forms.CharField(required=False, max_length=500)


class FlagForm(forms.Form):
    reason = forms.ChoiceField(choices=FlagReason.choices)
    note = forms.CharField(required=False, max_length=2000)
