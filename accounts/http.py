"""The request every HTML view is typed with: a logged-in user and django-htmx's
details (`request.htmx`)."""

from django.http import HttpRequest
from django_htmx.middleware import HtmxDetails

from accounts.models import User


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails
    user: User
