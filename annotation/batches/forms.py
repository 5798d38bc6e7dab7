"""Forms of the leads' batch pages: create, settings, assignments (input checks only;
the rules live in `annotation.batches.services`)."""

from typing import Any

from django import forms
from django.core.validators import MinValueValidator
from django.db.models import Count, Q, QuerySet

from accounts.models import User
from annotation.batches.services import SETTINGS_FIELDS
from annotation.models import Batch, Dialogue
from taxonomy.models import Taxonomy

# Paths under /batches/ that a batch of this name would hide.
RESERVED_NAMES = {"new"}
NO_SOURCE = "(none)"
# The model leaves these bounds to check constraints; the form says so up front.
BOUNDED_FIELDS = ("labels_required", "reservation_minutes", "break_reminder_minutes")


class SettingsFieldsMixin(forms.ModelForm):
    """The settings' fields as leads read them, with their lower bounds."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in BOUNDED_FIELDS:
            field = self.fields[name]
            assert isinstance(field, forms.IntegerField)
            field.min_value = 1
            field.validators.append(MinValueValidator(1, "Must be at least 1."))
            field.widget.attrs["min"] = 1
        self.fields["labels_required"].label = "Votes required per dialogue"
        self.fields["reservation_minutes"].label = "Reservation time (minutes)"
        self.fields["break_reminder_minutes"].label = "Break reminder (minutes)"
        self.fields["needs_caution_policy"].label = "Needs caution counts as"
        self.fields["asks_response_label"].label = "Ask annotators for a response label"
        self.fields[
            "labels_required"
        ].help_text = "Aegis 2.0 used 3. Lowering it later keeps the votes given."
        self.fields["instructions"].label = "Instructions (Markdown)"
        self.fields[
            "instructions"
        ].help_text = "Annotators read this with the guidelines on the labelling page."
        self.fields["instructions"].widget.attrs["rows"] = 6


class BatchCopyChoice(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj: Batch) -> str:
        n = getattr(obj, "n_originals", None)
        if n is None:
            return obj.name
        return f"{obj.name} ({n:,} dialogue{'' if n == 1 else 's'})"


def source_choices() -> list[tuple[str, str]]:
    """Every source of original dialogues, with how many there are (one query)."""
    rows = (
        Dialogue.objects.originals()
        .order_by("source")
        .values("source")
        .annotate(n=Count("pk"))
        .values_list("source", "n")
    )
    return [(s or NO_SOURCE, f"{s or NO_SOURCE} ({n:,})") for s, n in rows]


class BatchCreateForm(SettingsFieldsMixin):
    copy_from = BatchCopyChoice(
        queryset=Batch.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Copy dialogues from",
        help_text="Original dialogues only (no refusals); votes are not copied.",
    )
    sources = forms.MultipleChoiceField(
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Only these sources",
        help_text="None ticked: every source.",
    )

    class Meta:
        model = Batch
        fields = ("name", "taxonomy", *SETTINGS_FIELDS)
        error_messages = {"name": {"unique": "A batch with this name already exists."}}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        taxonomy = self.fields["taxonomy"]
        assert isinstance(taxonomy, forms.ModelChoiceField)
        taxonomy.queryset = Taxonomy.objects.published().order_by("name", "-version")
        taxonomy.empty_label = None
        if not self.is_bound:
            self.initial.setdefault("taxonomy", Taxonomy.objects.default().pk)
        copy_from = self.fields["copy_from"]
        assert isinstance(copy_from, BatchCopyChoice)
        copy_from.queryset = batches_with_originals()
        sources = self.fields["sources"]
        assert isinstance(sources, forms.MultipleChoiceField)
        sources.choices = source_choices()

    def clean_name(self) -> str:
        name = (self.cleaned_data.get("name") or "").strip()
        if name.lower() in RESERVED_NAMES:
            raise forms.ValidationError(f"“{name}” is taken by a page; choose another.")
        return name

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("sources") and not data.get("copy_from"):
            self.add_error(
                "copy_from", "Choose the batches to copy these sources from."
            )
        return data

    def service_arguments(self) -> dict[str, Any]:
        """The keyword arguments of `batches.create_batch`, less `by`."""
        d = self.cleaned_data
        sources = [("" if s == NO_SOURCE else s) for s in d["sources"]]
        return {
            "name": d["name"],
            "taxonomy": d["taxonomy"],
            **{name: d[name] for name in SETTINGS_FIELDS},
            "copy_from": list(d["copy_from"]),
            "sources": sources or None,
        }


def batches_with_originals() -> QuerySet[Batch]:
    return Batch.objects.annotate(
        n_originals=Count("dialogues", filter=Q(dialogues__augmentation=""))
    ).order_by("name")


class BatchSettingsForm(SettingsFieldsMixin):
    # Leads think of the gold rate in percent; the batch stores a share.
    gold_percent = forms.FloatField(
        label="Gold items (% of requests)",
        required=False,
        min_value=0,
        max_value=100,
        help_text="How often an annotator gets a gold item they have not labelled "
        "yet (see the Gold tab); empty or 0: never.",
        widget=forms.NumberInput(attrs={"step": "any", "min": 0, "max": 100}),
    )

    class Meta:
        model = Batch
        fields = SETTINGS_FIELDS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.initial.setdefault("gold_percent", round(self.instance.gold_rate * 100, 4))

    def settings(self) -> dict[str, Any]:
        """The keyword arguments of `batches.update_batch_settings`, less `batch`."""
        values = {name: self.cleaned_data[name] for name in SETTINGS_FIELDS}
        return values | {"gold_rate": (self.cleaned_data["gold_percent"] or 0) / 100}


class AssignForm(forms.Form):
    """One row per active annotator: on the batch or not, and their daily cap."""

    assigned = forms.TypedMultipleChoiceField(coerce=int, required=False)

    def __init__(
        self, *args: Any, annotators: list[User], assigned_ids: set[int], **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.annotators = annotators
        self.assigned_ids = assigned_ids
        field = self.fields["assigned"]
        assert isinstance(field, forms.TypedMultipleChoiceField)
        field.choices = [(u.pk, u.username) for u in annotators]
        for u in annotators:
            self.fields[cap_field(u)] = forms.IntegerField(
                required=False,
                min_value=1,
                error_messages={"min_value": "Must be at least 1."},
                label=f"Daily cap for {u.username}",
                initial=u.daily_label_cap,
                widget=forms.NumberInput(attrs={"class": "cap", "placeholder": "none"}),
            )

    def rows(self) -> list[dict[str, Any]]:
        """What the template shows per annotator (no queries)."""
        if self.is_bound:
            checked = {str(v) for v in self["assigned"].value() or []}
        else:
            checked = {str(pk) for pk in self.assigned_ids}
        return [
            {
                "user": u,
                "checked": str(u.pk) in checked,
                "was_assigned": u.pk in self.assigned_ids,
                "cap": self[cap_field(u)],
            }
            for u in self.annotators
        ]

    def chosen(self) -> list[User]:
        ids = set(self.cleaned_data["assigned"])
        return [u for u in self.annotators if u.pk in ids]

    def caps(self) -> dict[User, int | None]:
        return {u: self.cleaned_data[cap_field(u)] for u in self.annotators}


def cap_field(user: User) -> str:
    return f"cap_{user.pk}"
