from typing import Any

from django import forms

from annotation.facade import Batch
from jury.models import Judge, Scope
from jury.presence import Listener, queue_listeners


def cannot_run(judge: Judge, listener: Listener | None) -> str:
    """Why the new-run form offers a judge disabled; "" when it can run now. A judge
    with no worker on its queue would only queue chunks nobody takes (the run would
    sit "queued"), so the form names the command that starts one instead."""
    if judge.unavailable_reason:
        return judge.unavailable_reason
    if listener is None or not listener.listening:
        return f"no worker listening on {judge.queue_name}"
    return ""


class JudgeCheckboxes(forms.CheckboxSelectMultiple):
    """Judge checkboxes that say why a judge cannot run: disabled, with the reason
    under the box (`cannot_run`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.judges: dict[str, Judge] = {}
        self.listeners: dict[str, Listener | None] = {}

    def create_option(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        option = super().create_option(*args, **kwargs)
        judge = self.judges.get(str(option["value"]))
        if judge is not None:
            listener = self.listeners.get(judge.queue_name)
            option["judge"] = judge
            option["listener"] = listener
            option["reason"] = cannot_run(judge, listener)
            option["no_worker"] = not judge.unavailable_reason and bool(
                option["reason"]
            )
            attrs = option["attrs"]
            if option["reason"]:
                attrs["disabled"] = True
                option["selected"] = False
                attrs.pop("checked", None)
                if "id" in attrs:
                    # The template's note under the box (its id + "-note").
                    attrs["aria-describedby"] = f"{attrs['id']}-note"
        return option


class ScopeForm(forms.Form):
    """What a run would judge: the new-run form's first part, also read alone by the
    count the form shows while a lead fills it in."""

    batch = forms.ModelChoiceField(
        queryset=Batch.objects.order_by("name"), to_field_name="name"
    )
    scope = forms.ChoiceField(
        choices=Scope.choices, initial=Scope.UNSAFE_MAJORITY, widget=forms.RadioSelect
    )
    include_incomplete = forms.BooleanField(
        required=False,
        label="Also judge dialogues still waiting for human votes (where the votes "
        "so far say unsafe)",
    )
    sources = forms.CharField(
        required=False, help_text="Only these sources (comma-separated); empty: all."
    )

    def clean_sources(self) -> list[str]:
        raw = self.cleaned_data["sources"] or ""
        return [s.strip() for s in raw.split(",") if s.strip()]


class RunForm(ScopeForm):
    judges = forms.ModelMultipleChoiceField(
        queryset=Judge.objects.order_by("name"), widget=JudgeCheckboxes
    )
    chunk_size = forms.IntegerField(
        min_value=1,
        max_value=512,
        initial=16,
        help_text="Dialogues per task; a GPU judge takes bigger chunks well.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        judges = list(Judge.objects.order_by("name"))
        widget = self.fields["judges"].widget
        widget.judges = {str(j.pk): j for j in judges}
        widget.listeners = self.listeners = queue_listeners(
            j.queue_name for j in judges
        )
        self.fields["judges"].initial = [
            j.pk for j in judges if not cannot_run(j, self.listeners[j.queue_name])
        ]

    def clean_judges(self) -> list[Judge]:
        judges = list(self.cleaned_data["judges"])
        reasons = {
            j.name: cannot_run(j, self.listeners.get(j.queue_name)) for j in judges
        }
        refused = [f"{name} ({why})" for name, why in reasons.items() if why]
        if refused:
            raise forms.ValidationError("Not available: " + "; ".join(refused) + ".")
        return judges
