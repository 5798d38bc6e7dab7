"""How an import's messages read on a page: the commands they suggest as code."""

import re

from django import template
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

register = template.Library()

# `...` in a message is a command to copy (the CLI prints the backticks as they are).
_CODE = re.compile(r"`([^`]+)`")


@register.filter
def code_spans(message: str) -> SafeString:
    """The message escaped, with each `command` in a <code> element.

    The text may quote the uploaded file (its column names), so everything is
    escaped first and only our own <code> tags are added.
    """
    escaped = str(escape(message))
    # The groups are already escaped: wrapping them must not escape them again.
    return mark_safe(_CODE.sub(r"<code>\1</code>", escaped))
