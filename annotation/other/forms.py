"""The form of one Other group's decision (input checks only; the rules live in
`annotation.other.services`)."""

from django import forms

from annotation.other.services import MAX_TEXT
from taxonomy.models import Category

# The select's value for "keep the group as Other".
KEEP = "other"
MAP, RESET = "map", "reset"


class OtherMappingForm(forms.Form):
    text = forms.CharField(max_length=MAX_TEXT, strip=False)
    category = forms.CharField(required=False)
    action = forms.ChoiceField(
        choices=[(MAP, "Save"), (RESET, "Reset")], required=False
    )

    def clean_category(self) -> Category | None:
        """The chosen category (any; `map_other` says whether it may be used), or
        None to keep the group as Other."""
        value = self.cleaned_data["category"].strip()
        if value == KEEP:
            return None
        if self.data.get("action") == RESET:
            return None
        if not value:
            raise forms.ValidationError("Choose a category, or Keep as Other.")
        if not value.isdigit():
            raise forms.ValidationError("Choose one of the listed categories.")
        found = Category.objects.filter(pk=int(value)).first()
        if found is None:
            raise forms.ValidationError("That category does not exist.")
        return found

    @property
    def resets(self) -> bool:
        return self.cleaned_data.get("action") == RESET
