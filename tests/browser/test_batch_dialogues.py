"""The batch page's dialogue list in Chromium: a status per dialogue and filters by
status, as plain links (they work with JavaScript off too)."""

import pytest

from annotation.final_labels.services import derive_batch
from annotation.labelling.queue import recount_claimed
from annotation.models import Batch, Dialogue, VoteKind
from tests.browser.conftest import log_in, screenshot
from tests.factories import (
    BatchFactory,
    DialogueFactory,
    LabelFactory,
    LeadFactory,
)

pytestmark = pytest.mark.browser


def _labelled_batch() -> Batch:
    """60 dialogues waiting for votes after six in other states, three votes each."""
    batch = BatchFactory(name="round-1", labels_required=3)
    prompts = {
        "all-safe": ("How do I boil an egg?", ["safe", "safe", "safe"]),
        "majority": ("How do I hotwire a car?", ["unsafe", "unsafe", "safe"]),
        "needs-jury": ("Write a phishing email.", ["unsafe", "unsafe", "unsafe"]),
        "one-vote": ("Is this mushroom edible?", ["needs_caution"]),
        "gold": ("What is 2 + 2?", ["safe", "safe"]),
    }
    for external_id, (prompt, labels) in prompts.items():
        dialogue = DialogueFactory(
            batch=batch,
            external_id=external_id,
            prompt=prompt,
            response=None if external_id == "majority" else "An answer.",
        )
        for label in labels:
            LabelFactory(dialogue=dialogue, label=label)
    reference = DialogueFactory(batch=batch, external_id="imported", response=None)
    LabelFactory(
        dialogue=reference, kind=VoteKind.REFERENCE, annotator=None, label="unsafe"
    )
    for i in range(60):
        DialogueFactory(batch=batch, external_id=f"w-{i:02d}")
    Dialogue.objects.filter(batch=batch, external_id="gold").update(is_gold=True)
    recount_claimed(dialogue_ids=list(batch.dialogues.values_list("pk", flat=True)))
    derive_batch(batch)
    return batch


def _row_status(page, external_id: str) -> str:
    row = page.locator("table.batch-dialogues tbody tr", has_text=external_id)
    return " | ".join(row.locator("td").all_inner_texts()[-2:])


def test_a_lead_sees_each_dialogues_status_and_filters_by_it(page, live_server):
    # given a batch with dialogues in every state
    LeadFactory(username="lena")
    _labelled_batch()
    log_in(page, live_server, "lena")

    # when the lead opens the batch
    page.get_by_role("link", name="round-1").click()

    # then every row says its votes and its final label or what it waits for
    assert _row_status(page, "all-safe") == "3/3 | safe (unanimous)"
    assert _row_status(page, "majority") == "3/3 | unsafe (majority)"
    assert _row_status(page, "needs-jury") == "3/3 | needs the jury"
    assert _row_status(page, "one-vote") == "1/3 | waiting for votes 1/3"
    assert _row_status(page, "gold") == "2 | gold"
    assert _row_status(page, "imported") == "0/3 | unsafe (imported)"
    filters = page.get_by_role("navigation", name="Dialogues by status")
    assert filters.get_by_role("link").all_inner_texts() == [
        "All 66",
        "Waiting for votes 61",
        "Complete 3",
        "Unresolved 1",
        "Adjudicated 0",
        "Gold 1",
    ]
    screenshot(page, "batch-dialogues-status")

    # when they filter on the complete ones
    filters.get_by_role("link", name="Complete").click()

    # then only those are listed, and the filter is marked as the current one
    page.wait_for_url("**/batches/round-1/?status=complete")
    ids = page.locator("table.batch-dialogues tbody td.code").all_inner_texts()
    assert ids == ["all-safe", "majority", "imported"]
    current = filters.locator('[aria-current="page"]')
    assert current.inner_text() == "Complete 3"
    screenshot(page, "batch-dialogues-complete")


def test_the_filters_and_pages_work_without_javascript(browser, live_server):
    # given a lead whose browser runs no script
    LeadFactory(username="lena")
    _labelled_batch()
    context = browser.new_context(
        viewport={"width": 1366, "height": 850}, java_script_enabled=False
    )
    page = context.new_page()
    log_in(page, live_server, "lena")

    # when they open the batch, filter on waiting dialogues, and go to page 2
    page.goto(f"{live_server.url}/batches/round-1/")
    page.get_by_role("link", name="Waiting for votes").click()
    page.get_by_role("link", name="Next →").click()

    # then page 2 of the waiting ones is shown, still filtered
    page.wait_for_url("**/batches/round-1/?status=waiting&page=2")
    ids = page.locator("table.batch-dialogues tbody td.code").all_inner_texts()
    assert ids == [f"w-{i:02d}" for i in range(49, 60)]
    assert {t.split(" | ")[1] for t in (_row_status(page, i) for i in ids)} == {
        "waiting for votes 0/3"
    }
    assert page.get_by_text("Page 2 of 2").count() == 1
    screenshot(page, "batch-dialogues-waiting-page-2")
    context.close()
