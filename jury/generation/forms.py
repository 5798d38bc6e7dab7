from typing import Any

from django import forms

from annotation.facade import Batch
from jury.generation.services import DEFAULT_REFUSAL_GENERATOR
from jury.models import GenerationKind, Judge, Strategy


class GenerationForm(forms.Form):
    batch = forms.ModelChoiceField(
        queryset=Batch.objects.order_by("name"), to_field_name="name"
    )
    kind = forms.ChoiceField(
        choices=GenerationKind.choices,
        initial=GenerationKind.REFUSALS,
        widget=forms.RadioSelect,
    )
    generator = forms.ModelChoiceField(
        queryset=Judge.objects.enabled(),
        to_field_name="name",
        help_text="A judge slot: its model, backend, sampling and queue.",
    )
    strategies = forms.MultipleChoiceField(
        choices=Strategy.choices,
        required=False,
        initial=Strategy.values,
        widget=forms.CheckboxSelectMultiple,
        help_text="Refusals only: one refusal per unsafe prompt and strategy.",
    )
    chunk_size = forms.IntegerField(
        min_value=1,
        max_value=512,
        initial=8,
        help_text="Prompts per task; a GPU generator takes bigger chunks well.",
    )
    max_tokens = forms.IntegerField(
        min_value=8,
        max_value=8192,
        required=False,
        help_text="The longest text to write; empty: the generator's own setting.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        available = [j for j in Judge.objects.enabled() if j.available]
        preferred = [j for j in available if j.name == DEFAULT_REFUSAL_GENERATOR]
        if preferred or available:
            self.fields["generator"].initial = (preferred or available)[0].name

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("kind") == GenerationKind.REFUSALS and not data.get("strategies"):
            self.add_error("strategies", "Choose at least one strategy.")
        if data.get("kind") == GenerationKind.RESPONSES:
            data["strategies"] = []
        return data
