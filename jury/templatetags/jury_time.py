"""`{{ moment|ago }}`: "4 s ago", "12 min ago" (the jury's worker and run pages)."""

from datetime import datetime

from django import template
from django.utils import timezone

from jury.runs.state import duration

register = template.Library()


@register.filter
def ago(moment: datetime | None) -> str:
    if moment is None:
        return ""
    return f"{duration((timezone.now() - moment).total_seconds())} ago"
