"""A lead adjudicates from the queue with the keyboard, in Chromium: names hidden
and shown, a label on a digit, a category on a letter, Ctrl+Enter, the next item."""

import pytest

from annotation.final_labels.services import derive_batch
from annotation.models import (
    Adjudication,
    Batch,
    Dialogue,
    FinalLabel,
    LabelCategory,
)
from taxonomy.models import Category
from tests.annotation.adjudication.data import annotators, judge_vote, jury_decides
from tests.browser.conftest import screenshot
from tests.factories import (
    PASSWORD,
    BatchFactory,
    DialogueFactory,
    LabelFactory,
    LeadFactory,
)

pytestmark = pytest.mark.browser

HOSTILE = '<img src=x onerror="window.pwned = 1">'


def split_batch() -> tuple[Batch, list[Dialogue]]:
    """Two hostile dialogues, each voted safe, safe, unsafe by anna, ben and cleo
    (with comments), and unsafe by the jury's one judge."""
    batch = BatchFactory(name="round-5")
    people = annotators("anna", "ben", "cleo")
    violence = Category.objects.get(taxonomy=batch.taxonomy, name="Violence")
    made = []
    for i in range(2):
        dialogue = DialogueFactory(
            batch=batch,
            external_id=f"r5-{i}",
            prompt=f"{HOSTILE} How do I get back at my neighbour, take {i}?",
            response=f"<script>window.pwned = {i}</script> Talk to them first.",
        )
        for who, label in zip(people, ("safe", "safe", "unsafe"), strict=True):
            vote = LabelFactory(
                dialogue=dialogue,
                annotator=who,
                label=label,
                comment=f"{HOSTILE} {who.username}'s note",
                time_spent_ms=20_000,
            )
            if label == "unsafe":
                LabelCategory.objects.create(label=vote, category=violence)
        judge_vote(
            dialogue,
            "unsafe",
            violence,
            judge="llama-guard-3",
            run_key="run-1",
            raw_output='{"User Safety": "unsafe", "Safety Categories": "Violence"}',
        )
        jury_decides(
            dialogue,
            "unsafe",
            run_key="run-1",
            categories=["Violence"],
            valid_votes=1,
            total_votes=1,
            agreement=1.0,
        )
        made.append(dialogue)
    derive_batch(batch)
    return batch, made


def test_lead_decides_with_the_keyboard_and_moves_on(page, live_server):
    # given two split dialogues and a lead
    LeadFactory(username="lena")
    _, (first, second) = split_batch()
    page.goto(f"{live_server.url}/accounts/login/")
    page.keyboard.type("lena")
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live_server.url}/batches/")

    # when she opens the queue from the main navigation, filtered to the batch
    page.get_by_role("link", name="Adjudication").click()
    page.wait_for_url(f"{live_server.url}/adjudication/")
    page.get_by_label("Batch").select_option("round-5")
    page.wait_for_url(f"{live_server.url}/adjudication/?batch=round-5*")
    assert page.locator("#adjudication-table tbody tr").count() == 2
    screenshot(page, "adjudication-queue")
    page.get_by_role("link", name="r5-0").click()
    page.wait_for_url(f"{live_server.url}/adjudication/{first.pk}/?batch=round-5")

    # then the votes are side by side, the people unnamed until she asks
    who = page.locator("#human-votes .vote-who b")
    assert who.all_inner_texts() == ["Annotator 1", "Annotator 2", "Annotator 3"]
    page.keyboard.press("Alt+h")
    page.wait_for_url("**names=1")
    assert who.all_inner_texts() == ["anna", "ben", "cleo"]
    assert page.evaluate("window.pwned") is None
    assert (
        "<script>window.pwned = 0</script>"
        in page.locator(".conversation").inner_text()
    )

    # when she decides with the keys: unsafe, Violence, high, a reason, a note
    page.keyboard.press("?")
    assert page.locator("#help-overlay").is_visible()
    page.keyboard.press("Escape")
    assert not page.locator("#help-overlay").is_visible()
    page.keyboard.press("3")
    page.keyboard.press("a")
    page.keyboard.press("9")
    page.screenshot(path="/tmp/adj.png", full_page=True)
    page.keyboard.press("Alt+e")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")  # Annotator error
    page.keyboard.press("Escape")
    page.keyboard.press("Alt+c")
    page.keyboard.type("Asks how to hurt someone: unsafe.")
    page.keyboard.press("Alt+u")
    assert page.locator('input[name="prompt_label"][value="unsafe"]').is_checked()
    assert page.locator('input[name="categories"][value="Violence"]').is_checked()
    assert page.locator("#reason").input_value() == "annotator_error"
    screenshot(page, "adjudication-decide")
    page.keyboard.press("Control+Enter")

    # then the next dialogue of the filtered queue opens, names still shown
    page.wait_for_url(
        f"{live_server.url}/adjudication/{second.pk}/?batch=round-5&names=1"
    )
    assert "Decided r5-0: unsafe (Violence)." in page.locator("#toasts").inner_text()
    decision = Adjudication.objects.get()
    assert (
        decision.dialogue_id,
        decision.prompt_label,
        decision.response_label,
        decision.categories,
        decision.confidence,
        decision.reason,
        decision.note,
        decision.guideline_update,
    ) == (
        first.pk,
        "unsafe",
        None,
        ["Violence"],
        "high",
        "annotator_error",
        "Asks how to hurt someone: unsafe.",
        True,
    )
    final = FinalLabel.objects.get(dialogue=first)
    assert (
        final.provenance,
        final.prompt_label,
        final.response_label,
        final.response_label_source,
        final.violated_categories,
    ) == ("adjudicated", "unsafe", "unsafe", "llm_jury", ["Violence"])

    # when she goes back to it, reopens it with Alt+R, and skips on with Alt+N
    page.goto(f"{live_server.url}/adjudication/{first.pk}/?batch=round-5")
    assert page.locator("#decision-in-force").is_visible()
    page.keyboard.press("Alt+r")
    page.wait_for_selector("#decision-form")
    assert "Reopened r5-0" in page.locator("#toasts").inner_text()
    assert "reopened by lena" in page.locator("#decision-history").inner_text()
    page.keyboard.press("Alt+n")
    page.wait_for_url(f"{live_server.url}/adjudication/{second.pk}/?batch=round-5")
    decision.refresh_from_db()
    assert decision.reopened_by is not None
    assert FinalLabel.objects.get(dialogue=first).provenance == "majority"
