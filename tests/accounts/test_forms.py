"""What the pages' forms share (accounts.forms): a service's refusal shown on the
form that asked, and where a form asks to go back to."""

import pytest
from django import forms
from django.test import RequestFactory

from accounts.forms import add_refusal, posted_next


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


@pytest.mark.parametrize(
    ("posted", "goes_to"),
    [
        ({"next": "/batches/adj/?page=2"}, "/batches/adj/?page=2"),
        ({"next": "http://testserver/work/"}, "http://testserver/work/"),
        ({"next": "https://elsewhere.example/steal"}, "/home/"),
        ({"next": "//elsewhere.example/steal"}, "/home/"),
        ({"next": ""}, "/home/"),
        ({}, "/home/"),
    ],
)
def test_a_form_goes_back_to_its_next_page_on_this_site_only(
    rf: RequestFactory, posted: dict[str, str], goes_to: str
) -> None:
    assert posted_next(rf.post("/anywhere/", posted), "/home/") == goes_to
