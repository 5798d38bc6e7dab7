"""The one family of refusals: what the domain declines to do, and how to say it.

Every service error that a person or a client should read derives from `Refused`.
Its `status` is the HTTP status and its `code` a stable word for clients; `body()`
is what the API answers (config.error_pages maps it once for the API, and once for
pages and htmx). It lives in the lowest package so that every app can raise it.
"""

from typing import Any


class Refused(Exception):
    """A request refused by a rule of the domain; the message says why."""

    status = 400
    code = "invalid"

    def body(self) -> dict[str, Any]:
        """The API's answer: `{"detail": message, "code": code}`."""
        return {"detail": str(self), "code": self.code}


class NotALead(Refused):
    """What only leads (and admins) may do."""

    status = 403
    code = "not_a_lead"


class NotFound(Refused):
    """What the request names does not exist (a batch, a dialogue)."""

    status = 404
    code = "not_found"


class Conflict(Refused):
    """The state of things does not allow it now (a status transition, a
    reservation gone, a decision made meanwhile)."""

    status = 409
    code = "conflict"
