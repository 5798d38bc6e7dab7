"""{% locked_accounts_panel %}: the accounts and addresses locked out of logging in,
for the pages leads and admins open (the batch list); nothing when none is."""

from typing import Any

from django import template

from accounts import lockouts

register = template.Library()


@register.inclusion_tag("accounts/_locked_accounts.html", takes_context=True)
def locked_accounts_panel(context: template.Context) -> dict[str, Any]:
    request = context["request"]
    return {
        "locks": lockouts.current_locks(),
        # Unlocking lifts a guard against guessed passwords: admins only. A lead
        # sees who is locked, to tell them why and to ask an admin.
        "can_unlock": request.user.is_admin_role,
        "next": request.get_full_path(),
        "csrf_token": context.get("csrf_token"),
    }
