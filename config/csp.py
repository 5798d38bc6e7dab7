"""The Content-Security-Policy header, with one exception scoped by path.

The app's own pages, the Django admin included, run with the strict policy of
settings.CONTENT_SECURITY_POLICY. DRF's browsable API (HTML at /api/ for a person
who opens an endpoint in a browser) ships inline `style` attributes and a `<style>`
block of its own, so there, and only there, style-src also allows inline style;
script-src stays 'self' everywhere.
"""

from csp.middleware import CSPMiddleware, PolicyParts
from django.http import HttpRequest, HttpResponseBase

# Paths whose pages are third-party templates with inline style we do not control.
INLINE_STYLE_PREFIXES = ("/api/",)


class PathScopedCSPMiddleware(CSPMiddleware):
    """django-csp's middleware, relaxing style-src under INLINE_STYLE_PREFIXES."""

    def get_policy_parts(
        self,
        request: HttpRequest,
        response: HttpResponseBase,
        report_only: bool = False,
    ) -> PolicyParts:
        parts = super().get_policy_parts(request, response, report_only)
        if request.path_info.startswith(INLINE_STYLE_PREFIXES):
            parts.update = {**(parts.update or {}), "style-src": ["'unsafe-inline'"]}
        return parts
