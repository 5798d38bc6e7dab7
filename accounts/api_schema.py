"""What the API schema says about every endpoint's errors, and its paging parameters.

Every error the API answers is `{"detail", "code"}` (`ErrorOut`: a refusal's body, or
DRF's own errors as `config.error_pages.api_exception_handler` words them), except a
400 for fields, which names each field with its problems. `ErrorAutoSchema` (the
schema class of every view) declares the errors any endpoint can give, so that no
view has to repeat them: 401 (no or a bad token), 403 (a role, the content warning,
CSRF), 429 (throttled), 404 where the path names something, 400 where the request
carries input. A view adds what only it can answer (a 409) with `extend_schema`.
"""

from typing import Any

from django.core.validators import RegexValidator
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema_field
from rest_framework import serializers
from rest_framework.settings import api_settings


class ErrorOut(serializers.Serializer):
    """An error: what went wrong in words, and a stable code for clients."""

    detail = serializers.CharField()
    code = serializers.CharField(help_text="not_found, not_a_lead, throttled, ...")


FIELD_ERRORS = OpenApiResponse(
    OpenApiTypes.OBJECT,
    description="What was sent is not valid: `{field: [problem, ...]}` for fields, "
    "or `{detail, code}` (a body that is not JSON, a rule of the app).",
)

ERRORS = {
    400: FIELD_ERRORS,
    401: OpenApiResponse(ErrorOut, description="No credentials, or bad ones."),
    403: OpenApiResponse(
        ErrorOut,
        description="The role does not allow it, the content warning is not "
        "acknowledged yet, or a session request lacks its CSRF token.",
    ),
    404: OpenApiResponse(ErrorOut, description="Nothing has this id or name."),
    409: OpenApiResponse(ErrorOut, description="The state of things refuses it now."),
    429: OpenApiResponse(ErrorOut, description="Throttled: see Retry-After."),
}


def errors(*statuses: int) -> dict[int, OpenApiResponse]:
    """The documented errors of `statuses`, for an `extend_schema(responses=...)`."""
    return {status: ERRORS[status] for status in statuses}


# A name (a batch, a category) must have a letter in it: DRF trims a field's
# whitespace and refuses what is left blank; the pattern says so in the schema.
HAS_TEXT = RegexValidator(r"\S", "This field may not be blank.")


@extend_schema_field({"type": "string", "format": "binary"})
class UploadField(serializers.FileField):
    """A file sent in a multipart request (drf-spectacular would call it a URI)."""


class PageIn(serializers.Serializer):
    """`limit` and `offset` of a paged list, refused when they are not numbers
    (DRF's paginator would read `?offset=null` as 0)."""

    limit = serializers.IntegerField(
        required=False, min_value=1, max_value=1000, help_text="Items per page (100)."
    )
    offset = serializers.IntegerField(
        required=False, min_value=0, max_value=2**31 - 1, help_text="Items to skip."
    )


class ErrorAutoSchema(AutoSchema):
    """drf-spectacular's schema, with the errors every endpoint can give."""

    def _get_response_bodies(self, direction: Any = "response") -> dict[str, Any]:
        responses: dict[str, Any] = super()._get_response_bodies(direction)
        statuses = [401, 403, 429]
        if "{" in self.path:
            statuses.append(404)
        if self._has_input():
            statuses.append(400)
        for status in statuses:
            if str(status) not in responses:
                responses[str(status)] = self._get_response_for_code(
                    ERRORS[status], str(status), direction=direction
                )
        return dict(sorted(responses.items()))

    def map_parsers(self) -> list[Any]:
        # A view that keeps DRF's default parsers is documented as taking JSON: a
        # form cannot say null, so a schema offering forms would promise requests
        # that are read differently. Views that take files declare their parsers.
        if self.view.parser_classes == api_settings.DEFAULT_PARSER_CLASSES:
            return ["application/json"]
        return super().map_parsers()

    def _has_input(self) -> bool:
        if self.method in ("POST", "PUT", "PATCH") and self.get_request_serializer():
            return True
        return any(p.get("in") == "query" for p in self._get_parameters())
