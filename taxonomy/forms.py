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
        widgets = {
            "unsafe_when": forms.Textarea(attrs={"rows": 2}),
            "allowed_when": forms.Textarea(attrs={"rows": 2}),
        }


CategoryFormSet = forms.modelformset_factory(Category, form=CategoryForm, extra=0)


class NewCategoryForm(forms.Form):
    code = forms.RegexField(regex=r"^S\d{1,3}$", max_length=8, help_text="e.g. S24")
    name = forms.CharField(max_length=100, help_text="The exact string used in data.")
    group = forms.ChoiceField(choices=Group.choices, initial=Group.FINE_GRAINED)
