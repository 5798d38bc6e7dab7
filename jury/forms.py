from typing import Any

from django import forms

from annotation.models import Batch
from jury.models import Judge, Scope


class RunForm(forms.Form):
    batch = forms.ModelChoiceField(
        queryset=Batch.objects.order_by("name"), to_field_name="name"
    )
    judges = forms.ModelMultipleChoiceField(
        queryset=Judge.objects.enabled(), widget=forms.CheckboxSelectMultiple
    )
    scope = forms.ChoiceField(
        choices=Scope.choices, initial=Scope.UNSAFE_MAJORITY, widget=forms.RadioSelect
    )
    sources = forms.CharField(
        required=False, help_text="Only these sources (comma-separated); empty: all."
    )
    chunk_size = forms.IntegerField(
        min_value=1,
        max_value=512,
        initial=16,
        help_text="Dialogues per task; a GPU judge takes bigger chunks well.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["judges"].initial = [
            j.pk for j in Judge.objects.enabled() if j.available
        ]

    def clean_sources(self) -> list[str]:
        raw = self.cleaned_data["sources"] or ""
        return [s.strip() for s in raw.split(",") if s.strip()]
