"""The request every HTML view is typed with: a logged-in user and django-htmx's
details (`request.htmx`); and how a view answers htmx's request for a fragment."""

from django.http import HttpRequest
from django_htmx.middleware import HtmxDetails

from accounts.models import User


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails
    user: User


def page_or_fragment(request: HtmxHttpRequest, page: str, *fragments: str) -> str:
    """The template to render: `page#<id>` when htmx asks for one of the page's
    `fragments`, else the whole page.

    The convention: a fragment is a named partial whose name is its wrapper's DOM
    id; it is fetched with hx-get of the page's own URL and hx-target="#<id>", so
    htmx's HX-Target header names it.
    """
    target = request.htmx.target if request.htmx else None
    if target and target in fragments:
        return f"{page}#{target}"
    return page
