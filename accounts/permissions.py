"""Role checks shared by HTML views and the API."""

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.views import APIView

View = Callable[..., HttpResponse]


def lead_required(view: View) -> View:
    """Only leads and admins; others get 403, anonymous users the login page."""

    @login_required
    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_lead:  # type: ignore[union-attr]
            raise PermissionDenied("This page is for leads.")
        return view(request, *args, **kwargs)

    return wrapped


def admin_role_required(view: View) -> View:
    @login_required
    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_admin_role:  # type: ignore[union-attr]
            raise PermissionDenied("This page is for admins.")
        return view(request, *args, **kwargs)

    return wrapped


class IsLead(BasePermission):
    message = "Only leads and admins may do this."

    def has_permission(self, request: Request, view: APIView) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and getattr(user, "is_lead", False))
