"""The accounts app's pages beyond Django's login and logout."""

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts import lockouts
from accounts.forms import posted_next
from accounts.permissions import admin_role_required

KINDS = {"account": "the account", "address": "the address"}


@require_POST
@admin_role_required
def unlock(request: HttpRequest) -> HttpResponse:
    """Lift a login lock (the Unlock button of the locked-accounts panel)."""
    kind, key = request.POST.get("kind", ""), request.POST.get("key", "").strip()
    if kind in KINDS and key:
        removed = lockouts.unlock(kind=kind, key=key)  # type: ignore[arg-type]
        if removed:
            messages.success(request, f"Unlocked {KINDS[kind]} {key}.")
        else:
            messages.info(request, f"{KINDS[kind].capitalize()} {key} was not locked.")
    else:
        messages.error(request, "Say which account or address to unlock.")
    return HttpResponseRedirect(posted_next(request, reverse("home")))
