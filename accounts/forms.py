"""What the pages' forms share: a service's refusal shown on the form that asked."""

from collections.abc import Mapping, Sequence

from django import forms


def add_refusal(form: forms.Form, by_field: Mapping[str, Sequence[str]]) -> None:
    """Put a refusal's messages on the fields they name (a name the form has no
    field for goes on the form as a whole), as if the form had found them: the page
    shows them where it shows the form's own errors.

    `by_field` is a refusal's messages per field (`VoteProblems.by_field()`).
    """
    for field, messages in by_field.items():
        form.add_error(field if field in form.fields else None, list(messages))
