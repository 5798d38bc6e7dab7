from django import forms

from taxonomy.models import Category, Group


class CategoryForm(forms.ModelForm):
    class Meta:
        model = Category
        fields = [
            "code",
            "name",
            "display_name",
            "group",
            "unsafe_when",
            "allowed_when",
            "order",
            "requires_text",
            "retired",
        ]
        # Guidance is a paragraph a lead writes and annotators read: room for it.
        widgets = {
            "unsafe_when": forms.Textarea(attrs={"rows": 5}),
            "allowed_when": forms.Textarea(attrs={"rows": 5}),
        }
        labels = {"name": "Exact string", "requires_text": "Asks for free text"}


class BaseCategoryFormSet(forms.BaseModelFormSet):
    """Edits every category of one draft; codes and names stay unique within it.

    The per-form unique checks cannot see the (taxonomy, code) and (taxonomy, name)
    constraints because `taxonomy` is not a form field, so they are checked here.
    """

    def clean(self) -> None:
        super().clean()
        for field in ("code", "name"):
            seen: dict[str, int] = {}
            for number, form in enumerate(self.forms, start=1):
                value = (
                    form.cleaned_data.get(field)
                    if hasattr(form, "cleaned_data")
                    else None
                )
                if value is None:
                    continue
                if value in seen:
                    form.add_error(field, f"Row {seen[value]} already uses {value!r}.")
                else:
                    seen[value] = number


CategoryFormSet = forms.modelformset_factory(
    Category, form=CategoryForm, formset=BaseCategoryFormSet, extra=0, edit_only=True
)


class NewCategoryForm(forms.Form):
    code = forms.RegexField(regex=r"^S\d{1,3}$", max_length=8, help_text="e.g. S24")
    name = forms.CharField(
        max_length=100, label="Exact string", help_text="The exact string used in data."
    )
    group = forms.ChoiceField(choices=Group.choices, initial=Group.FINE_GRAINED)
