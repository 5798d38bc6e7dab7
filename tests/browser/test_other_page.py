"""The Other page in Chromium: a saved decision updates its row and the counters."""

import pytest

from annotation.models import Dialogue, LabelCategory, OtherMapping
from taxonomy.models import Category, Taxonomy
from tests.browser.conftest import log_in, screenshot
from tests.factories import (
    BatchFactory,
    DialogueFactory,
    LabelFactory,
    LeadFactory,
)

pytestmark = pytest.mark.browser


def _other_vote(dialogue: Dialogue, text: str) -> None:
    vote = LabelFactory(dialogue=dialogue, label="unsafe", other_text=text)
    other = Category.objects.get(taxonomy=dialogue.batch.taxonomy, name="Other")
    LabelCategory.objects.create(label=vote, category=other, position=0)


def test_saving_a_decision_updates_the_counters_above_the_table(page, live_server):
    # given three Other texts from four votes, none decided
    LeadFactory(username="lena")
    batch = BatchFactory(name="round-1")
    for text in ("Phishing kit", "phishing kit", "Crypto scam", "Deepfake of a judge"):
        _other_vote(DialogueFactory(batch=batch), text)
    log_in(page, live_server, "lena")
    page.get_by_role("link", name="Other", exact=True).click()
    summary = page.locator("#other-summary")
    assert summary.inner_text() == "3 groups from 4 votes; 0 decided."

    # when the lead maps "phishing kit" to Fraud/Deception and saves (htmx)
    row = page.locator("#other-groups tbody tr", has_text="phishing kit")
    row.get_by_label("Decision for “phishing kit”").select_option(
        label="S16: Fraud/Deception"
    )
    row.get_by_role("button", name="Save").click()

    # then the row shows the decision and the counters say one is decided
    page.locator("#other-groups .badge.done", has_text="Fraud/Deception").wait_for()
    assert summary.inner_text() == "3 groups from 4 votes; 1 decided."
    mapping = OtherMapping.objects.get()
    assert (mapping.text, mapping.category.name) == ("phishing kit", "Fraud/Deception")
    screenshot(page, "other-counters-after-save")

    # and keeping a second one as Other counts it too
    row = page.locator("#other-groups tbody tr", has_text="crypto scam")
    row.get_by_label("Decision for “crypto scam”").select_option(label="Keep as Other")
    row.get_by_role("button", name="Save").click()
    page.locator("#other-summary", has_text="2 decided").wait_for()
    assert Taxonomy.objects.default().other_mappings.count() == 2
