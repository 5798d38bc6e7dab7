"""What the pages' forms share: a service's refusal shown on the form that asked,
and where a form asks to go back to."""

from collections.abc import Mapping, Sequence

from django import forms
from django.http import HttpRequest
from django.utils.http import url_has_allowed_host_and_scheme


def add_refusal(form: forms.Form, by_field: Mapping[str, Sequence[str]]) -> None:
    """Put a refusal's messages on the fields they name (a name the form has no
    field for goes on the form as a whole), as if the form had found them: the page
    shows them where it shows the form's own errors.

    `by_field` is a refusal's messages per field (`VoteProblems.by_field()`).
    """
    for field, messages in by_field.items():
        form.add_error(field if field in form.fields else None, list(messages))


def posted_next(request: HttpRequest, default: str) -> str:
    """The page a posted form asks to go back to (its `next` field) when it is on
    this site, else `default`: never a redirect to someone else's site."""
    target = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return target
    return default
