"""A service's refusal shown on the form that asked (accounts.forms.add_refusal)."""

from django import forms

from accounts.forms import add_refusal


class NoteForm(forms.Form):
    label = forms.CharField()
    note = forms.CharField(required=False)


def test_a_refusal_goes_on_the_fields_it_names_and_the_rest_on_the_form() -> None:
    # given a form that passed its own checks
    form = NoteForm({"label": "unsafe", "note": "kept"})
    assert form.is_valid()
    # when a service refuses it, naming one of its fields and one it has not
    add_refusal(
        form,
        {"label": ["needs a category", "is odd"], "dialogue": ["is gone"]},
    )
    # then each message is where the page shows it, and the input is kept
    assert form.errors == {
        "label": ["needs a category", "is odd"],
        "__all__": ["is gone"],
    }
    assert form.non_field_errors() == ["is gone"]
    assert (form["label"].value(), form["note"].value()) == ("unsafe", "kept")
    assert not form.is_valid()


def test_no_refusal_leaves_the_form_valid() -> None:
    form = NoteForm({"label": "safe"})
    assert form.is_valid()
    add_refusal(form, {})
    assert form.is_valid()
    assert form.errors == {}
