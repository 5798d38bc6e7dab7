"""A batch's instructions (Markdown written by leads) as safe HTML."""

import markdown
import nh3
from django.utils.safestring import SafeString, mark_safe

ALLOWED_TAGS = {
    "p", "br", "strong", "em", "b", "i", "code", "pre", "blockquote", "ul", "ol", "li",
    "h1", "h2", "h3", "h4", "a", "hr", "table", "thead", "tbody", "tr", "th", "td",
}  # fmt: skip


def render_instructions(text: str) -> SafeString:
    """Markdown to HTML, then cleaned: no scripts, styles or event handlers survive."""
    html = markdown.markdown(text or "", extensions=["tables", "sane_lists"])
    return mark_safe(
        nh3.clean(html, tags=ALLOWED_TAGS, attributes={"a": {"href", "title"}})
    )
