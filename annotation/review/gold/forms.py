"""Forms of the gold pages: a known answer, and adding gold items by id (input checks
only; the rules live in `annotation.review.gold.services`)."""

import re
from typing import Any

from django import forms

from annotation.models import LabelValue
from annotation.review.gold.services import GoldAnswer

MAX_IDS = 500


class GoldAnswerForm(forms.Form):
    label = forms.ChoiceField(
        label="Dialogue label",
        choices=LabelValue.choices,
        widget=forms.RadioSelect,
        error_messages={"required": "Choose safe, needs caution or unsafe."},
    )
    response_label = forms.ChoiceField(
        label="Response label",
        choices=[("", "—"), *LabelValue.choices],
        required=False,
    )
    categories = forms.MultipleChoiceField(
        required=False, widget=forms.CheckboxSelectMultiple
    )
    other_text = forms.CharField(label="Other text", required=False, max_length=500)
    note = forms.CharField(
        label="Why (for leads)",
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2}),
    )

    def __init__(self, *args: Any, category_names: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["categories"]
        assert isinstance(field, forms.MultipleChoiceField)
        field.choices = [(n, n) for n in category_names]

    def answer(self) -> GoldAnswer:
        d = self.cleaned_data
        return GoldAnswer(
            label=d["label"],
            response_label=d["response_label"] or None,
            categories=tuple(d["categories"]),
            other_text=d["other_text"],
            note=d["note"],
        )


class GoldAddForm(GoldAnswerForm):
    external_ids = forms.CharField(
        label="Dialogue ids",
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="The batch's dialogue ids, separated by commas, spaces or lines; "
        "each gets the answer below.",
    )

    field_order = ["external_ids"]

    def clean_external_ids(self) -> list[str]:
        ids = list(
            dict.fromkeys(
                part for part in re.split(r"[\s,]+", self.cleaned_data["external_ids"])
            )
        )
        ids = [i for i in ids if i]
        if not ids:
            raise forms.ValidationError("Give at least one dialogue id.")
        if len(ids) > MAX_IDS:
            raise forms.ValidationError(f"At most {MAX_IDS} at once.")
        return ids
