"""A lead makes a batch from an imported one, assigns two annotators, and watches it."""

import pytest

from accounts.models import User
from annotation.models import Batch, Flag, Skip
from tests.browser.conftest import log_in, screenshot
from tests.factories import (
    BatchFactory,
    DialogueFactory,
    LabelFactory,
    LeadFactory,
    UserFactory,
)

pytestmark = pytest.mark.browser

HOSTILE_NOTE = '<img src=x onerror="window.pwned = 1">the text is cut off'


def test_lead_creates_assigns_and_watches_a_batch(page, live_server):
    # given an imported batch with prompts from two sources, and three annotators
    LeadFactory(username="lena")
    anna, ben = UserFactory(username="anna"), UserFactory(username="ben")
    UserFactory(username="cleo")
    imported = BatchFactory(name="aegis-import")
    for i in range(6):
        DialogueFactory(
            batch=imported,
            source="aegis2",
            external_id=f"aegis-{i:03d}",
            prompt=f"How do I pick the lock of my own shed, take {i}?",
        )
    for i in range(3):
        DialogueFactory(batch=imported, source="xstest", external_id=f"xs-{i}")
    log_in(page, live_server, "lena")

    # when the lead creates round-2 from its aegis2 prompts with two votes each
    page.get_by_role("link", name="New batch").click()
    page.get_by_label("Name", exact=True).fill("round-2")
    page.get_by_label("aegis-import (9 dialogues)").check()
    page.get_by_label("aegis2 (6)").check()
    page.get_by_label("Votes required per dialogue").fill("2")
    page.get_by_label("Instructions (Markdown)").fill(
        "Label the **whole dialogue**. Flag broken text."
    )
    screenshot(page, "lead-batch-new")
    page.get_by_role("button", name="Create batch").click()

    # then the batch exists with the six copies, and the assignment page is next
    page.wait_for_url(f"{live_server.url}/batches/round-2/assign/")
    assert page.locator(".toast").first.inner_text() == (
        "Batch round-2 created with 6 dialogues."
    )
    batch = Batch.objects.get(name="round-2")
    assert batch.labels_required == 2
    assert batch.dialogues.count() == 6

    # when anna and ben are ticked, ben capped at 40 a day, and saved
    page.get_by_label("anna", exact=True).check()
    page.get_by_label("ben", exact=True).check()
    page.get_by_label("Daily cap for ben").fill("40")
    page.get_by_role("button", name="Save annotators").click()

    # then both are on the batch and cleo is not
    page.wait_for_url(f"{live_server.url}/batches/round-2/assign/")
    assert page.locator(".toast").first.inner_text() == (
        "round-2: 2 assigned, 0 unassigned, 1 daily caps changed."
    )
    assert sorted(batch.assignments.values_list("annotator__username", flat=True)) == [
        "anna",
        "ben",
    ]
    assert User.objects.get(username="ben").daily_label_cap == 40

    # given some work on it: votes, a skip, and two flags (one with a hostile note)
    first, second, third, *_ = batch.dialogues.order_by("external_id")
    for dialogue, seconds in ((first, 12), (second, 20), (third, 31)):
        LabelFactory(dialogue=dialogue, annotator=anna, time_spent_ms=seconds * 1000)
    LabelFactory(dialogue=first, annotator=ben, label="unsafe", time_spent_ms=9000)
    Skip.objects.create(dialogue=second, annotator=ben)
    Flag.objects.create(
        dialogue=third, annotator=anna, reason="broken_text", note=HOSTILE_NOTE
    )
    Flag.objects.create(dialogue=second, annotator=ben, reason="guideline_unclear")

    # when the lead opens the progress page
    page.get_by_role("link", name="Progress").click()
    page.wait_for_url(f"{live_server.url}/batches/round-2/progress/")

    # then the totals, each annotator's row and the open flags are shown
    bar = page.get_by_role("progressbar")
    assert bar.get_attribute("aria-valuenow") == "33"  # 4 of 12 votes
    rows = page.locator("#annotator-progress tbody tr").all_inner_texts()
    assert [r.split("\t") for r in rows] == [
        ["anna", "3", "0", "1", "3 / none", "20.0"],
        ["ben", "1", "1", "1", "1 / 40", "9.0"],
    ]
    flags = page.locator("#open-flags tbody tr")
    assert flags.count() == 2
    assert page.get_by_text(HOSTILE_NOTE).count() == 1
    assert page.evaluate("window.pwned === undefined")
    screenshot(page, "lead-progress")

    # when the lead resolves the hostile flag
    flags.filter(has_text="cut off").get_by_role("button", name="Resolve").click()

    # then it leaves the list and is recorded as resolved by lena
    page.locator("#open-flags tbody tr").nth(1).wait_for(state="detached")
    assert page.locator("#open-flags tbody tr").count() == 1
    assert page.get_by_text(HOSTILE_NOTE).count() == 0
    resolved = Flag.objects.get(annotator=anna)
    assert resolved.resolved_by is not None
    assert resolved.resolved_by.username == "lena"
    assert Flag.objects.open().get().annotator == ben
