"""Forms of the audit pages: a new audit and feedback on a vote (input checks only;
the rules live in `annotation.review.audits.services`)."""

from typing import Any

from django import forms

from annotation.models import Verdict
from annotation.review.audits.services import DEFAULT_RATE, MAX_SEED


class AuditForm(forms.Form):
    percent = forms.FloatField(
        label="Sample (%)",
        initial=round(DEFAULT_RATE * 100),
        min_value=0.1,
        max_value=100,
        help_text="Of the finished dialogues (those with every vote).",
        widget=forms.NumberInput(attrs={"step": "0.1"}),
    )
    per_annotator = forms.BooleanField(
        label="Per annotator: this share of each annotator's finished dialogues",
        required=False,
    )
    seed = forms.IntegerField(
        label="Seed",
        required=False,
        min_value=0,
        max_value=MAX_SEED,
        help_text="Empty: a random one (stored, so the sample can be drawn again).",
    )

    def service_arguments(self) -> dict[str, Any]:
        """The keyword arguments of `audits.create_audit`, less `batch` and `by`."""
        d = self.cleaned_data
        return {
            "rate": d["percent"] / 100,
            "per_annotator": d["per_annotator"],
            "seed": d["seed"],
        }


class FeedbackForm(forms.Form):
    verdict = forms.ChoiceField(
        choices=Verdict.choices,
        widget=forms.RadioSelect,
        error_messages={"required": "Agree or disagree with the vote."},
    )
    guideline_ref = forms.CharField(
        label="Guideline reference",
        required=False,
        max_length=200,
        widget=forms.TextInput(
            attrs={"placeholder": "§2.3 Violence vs. Criminal Planning"}
        ),
    )
    text = forms.CharField(
        label="Note to the annotator",
        required=False,
        max_length=4000,
        widget=forms.Textarea(attrs={"rows": 2}),
    )
