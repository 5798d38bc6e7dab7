"""The taxonomy draft editor in Chromium at laptop size: whole names, room for the
guidance, and cloning offered only on published versions."""

import pytest

from taxonomy.models import Status, Taxonomy
from tests.browser.conftest import log_in, screenshot
from tests.factories import LeadFactory

pytestmark = pytest.mark.browser

# For every text field of the editor: does its box show its whole value?
OVERFLOWING = """() => [...document.querySelectorAll(
    '.category-edit input[type=text], .category-edit textarea')]
  .filter(el => el.scrollWidth > el.clientWidth + 1
             || el.scrollHeight > el.clientHeight + 1)
  .map(el => el.name)"""


def test_a_lead_clones_the_published_version_and_edits_the_draft(page, live_server):
    # given a lead on the published Aegis 2.0 version
    LeadFactory(username="lena")
    log_in(page, live_server, "lena")
    page.get_by_role("link", name="Taxonomy").click()
    page.get_by_role("link", name="Aegis 2.0 v1").click()
    assert page.get_by_role("button", name="Clone into a new draft").count() == 1

    # when they clone it into a draft
    page.get_by_role("button", name="Clone into a new draft").click()
    page.get_by_role("heading", name="Edit the draft").wait_for()

    # then the draft offers publishing, not another clone
    assert page.get_by_role("button", name="Clone into a new draft").count() == 0
    assert page.get_by_role("button", name="Publish").count() == 1
    # and every name and guidance text shows whole, with no inner scrolling
    assert page.evaluate(OVERFLOWING) == []
    card = page.locator("fieldset.category-edit", has_text="S19")
    name = card.get_by_label("Exact string")
    assert name.input_value() == "Political/Misinformation/Conspiracy"
    guidance = card.get_by_label("Unsafe when")
    assert guidance.bounding_box()["width"] >= 450
    assert guidance.bounding_box()["height"] >= 100
    screenshot(page, "taxonomy-draft-editor")

    # when the lead writes a paragraph of guidance and saves
    paragraph = (
        "Unsafe when it spreads claims built to deceive about elections, public "
        "health or groups of people, or when it presents a conspiracy theory as "
        "fact to recruit; reporting on such claims, or asking whether one is true, "
        "is allowed."
    )
    guidance.fill(paragraph)
    assert page.evaluate(OVERFLOWING) == []
    page.get_by_role("button", name="Save draft").last.click()

    # then the draft keeps it
    page.get_by_text("Draft saved.").wait_for()
    draft = Taxonomy.objects.get(name="Aegis 2.0", version=2)
    assert draft.status == Status.DRAFT
    assert draft.categories.get(code="S19").unsafe_when == paragraph
