"""Error pages in the app's layout (403, 404, 500), JSON errors for the API.

Django's own handlers only run with DEBUG off; `make run` runs with DEBUG on, where a
404 would be Django's technical page and a 403 is logged with a traceback. The
middleware renders the same pages in both modes, so what a person sees does not
depend on how the server was started; a 500 keeps Django's debug page under DEBUG,
where the traceback is what a developer needs.
"""

import json
import logging
from collections.abc import Callable
from typing import Any

from django.core.exceptions import ObjectDoesNotExist, PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.utils.http import url_has_allowed_host_and_scheme
from rest_framework.exceptions import Throttled
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from accounts.refusals import Refused

logger = logging.getLogger(__name__)

TITLES = {
    400: "This could not be done",
    403: "You cannot open this page",
    409: "This could not be done now",
    404: "There is no such page",
    500: "Something went wrong on our side",
}
DEFAULT_MESSAGES = {
    400: "What was sent breaks a rule of the app.",
    403: "Your role does not give you access to it.",
    409: "Something changed meanwhile; look at the page again.",
    404: "The address may be mistyped, or what it showed was removed.",
    500: "The error is logged. Your saved work is safe; try again in a moment.",
}
API_MESSAGES = {
    400: "Invalid.",
    403: "Forbidden.",
    404: "Not found.",
    409: "Conflict.",
    500: "Server error.",
}
API_CODES = {
    400: "invalid",
    403: "permission_denied",
    404: "not_found",
    409: "conflict",
    500: "server_error",
}


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def _back_url(request: HttpRequest) -> str:
    """The page the person came from, when it is one of ours."""
    referer = request.META.get("HTTP_REFERER", "")
    if referer and url_has_allowed_host_and_scheme(
        referer, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return referer
    return ""


def error_response(
    request: HttpRequest, status: int, message: str = ""
) -> HttpResponse:
    """The error page for `status`: JSON under /api/, else the app's layout."""
    if _is_api(request):
        detail = message or API_MESSAGES[status]
        body = {"detail": detail, "code": API_CODES.get(status, "error")}
        return JsonResponse(body, status=status)
    context = {
        "status": status,
        "title": TITLES.get(status, TITLES[400]),
        "message": message or DEFAULT_MESSAGES.get(status, DEFAULT_MESSAGES[400]),
        "back_url": _back_url(request),
    }
    try:
        template = f"{status}.html" if status in (403, 404, 500) else "error.html"
        html = render_to_string(template, context, request=request)
    except Exception:  # a 500 page must render even when the database is down
        logger.exception("the %s page could not be rendered", status)
        html = render_to_string("500_plain.html", context)
    response = HttpResponse(html, status=status)
    response.aegis_error_page = True  # type: ignore[attr-defined]
    return response


def _message(exception: Exception | None) -> str:
    """The refusal's own words ("This page is for leads."), if it has any."""
    return str(exception.args[0]) if exception and exception.args else ""


def refused_response(request: HttpRequest, refused: Refused) -> HttpResponse:
    """A refusal no view answered itself: for htmx, the page stays as it is and a
    toast says why (a 200, so htmx takes the header); otherwise the error page."""
    if getattr(request, "htmx", False) and not _is_api(request):
        response = HttpResponse(status=200)
        response["HX-Reswap"] = "none"
        response["HX-Trigger"] = json.dumps(
            {"toast": {"message": str(refused), "level": "error"}}
        )
        return response
    return error_response(request, refused.status, str(refused))


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler, plus the domain's refusals and rows that do not exist."""
    if isinstance(exc, Refused):
        return Response(exc.body(), status=exc.status)
    if isinstance(exc, ObjectDoesNotExist):
        return Response({"detail": "Not found.", "code": "not_found"}, status=404)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, Throttled):
        # DRF's 429 with its Retry-After header, in the shape of our errors.
        response.data = {"detail": str(exc.detail), "code": "throttled"}
    elif isinstance(response.data, dict) and list(response.data) == ["detail"]:
        # DRF's 401, 403, 404, 405, 415 and a body that is not JSON: {detail, code}
        # like every other error (field errors keep their {field: [problem]}).
        detail = response.data["detail"]
        response.data = {
            "detail": str(detail),
            "code": getattr(detail, "code", "error"),
        }
    return response


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    return error_response(request, 403, _message(exception))


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    return error_response(request, 404)


def server_error(request: HttpRequest) -> HttpResponse:
    return error_response(request, 500)


class ErrorPagesMiddleware:
    """Renders our 403 and 404 pages in every mode (see the module's docstring).

    A view's PermissionDenied or Http404 is answered here, so Django logs one line
    ("Forbidden: /batches/") instead of a traceback; a URL that matches no pattern
    never reaches a view, so its 404 is replaced on the way out.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            response.status_code == 404
            and getattr(request, "resolver_match", None) is None
            and not getattr(response, "aegis_error_page", False)
        ):
            return error_response(request, 404)
        return response

    def process_exception(
        self, request: HttpRequest, exception: Exception
    ) -> HttpResponse | None:
        if isinstance(exception, PermissionDenied):
            return error_response(request, 403, _message(exception))
        if isinstance(exception, Http404 | ObjectDoesNotExist):
            return error_response(request, 404)
        if isinstance(exception, Refused):
            return refused_response(request, exception)
        return None
