"""The annotator's unread feedback count, for the top bar of every page."""

from django import template

from accounts.models import User
from annotation.review.audits.services import unread_feedback

register = template.Library()


@register.simple_tag
def unread_feedback_count(user: User) -> int:
    """How many of the leads' notes on this person's votes they have not read (one
    indexed count)."""
    if not user.is_authenticated:
        return 0
    return unread_feedback(user)
