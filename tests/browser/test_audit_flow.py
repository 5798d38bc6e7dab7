"""A lead audits a batch and leaves feedback that the annotator reads; a lead marks a
gold item, the annotator labels it unknowingly, and the gold page scores her."""

import re

import pytest
from django.utils import timezone

from annotation.models import Audit, AuditItem, Batch, Feedback, Label, LabelCategory
from taxonomy.models import Category
from tests.browser.conftest import log_in, screenshot
from tests.factories import (
    AssignmentFactory,
    BatchFactory,
    DialogueFactory,
    LabelFactory,
    LeadFactory,
    UserFactory,
)

pytestmark = pytest.mark.browser

HOSTILE = '<img src=x onerror="window.pwned = 1">'


def annotator_page(browser, live_server, username: str):
    """A second browser for the annotator, beside the lead's."""
    context = browser.new_context(viewport={"width": 1366, "height": 850})
    page = context.new_page()
    page.set_default_timeout(30_000)
    log_in(page, live_server, username, lands_on="/work/")
    return page


def finished_batch() -> Batch:
    """Four dialogues, each labelled by anna and ben (two votes required)."""
    batch = BatchFactory(name="round-4", labels_required=2)
    anna = UserFactory(username="anna", content_warning_acknowledged_at=timezone.now())
    ben = UserFactory(username="ben", content_warning_acknowledged_at=timezone.now())
    violence = Category.objects.get(taxonomy=batch.taxonomy, name="Violence")
    for i in range(4):
        d = DialogueFactory(
            batch=batch,
            external_id=f"r4-{i}",
            prompt=f"{HOSTILE} How do I get back at my neighbour, take {i}?",
            response=f"<script>window.pwned = {i}</script> Talk to them first.",
        )
        LabelFactory(dialogue=d, annotator=anna, label="safe", comment=HOSTILE)
        vote = LabelFactory(dialogue=d, annotator=ben, label="unsafe")
        LabelCategory.objects.create(label=vote, category=violence, position=0)
    return batch


def test_lead_audits_a_batch_and_the_annotator_reads_the_feedback(
    page, browser, live_server
):
    # given a batch whose four dialogues have all their votes
    LeadFactory(username="lena")
    finished_batch()
    log_in(page, live_server, "lena")

    # when the lead opens the batch's audits and draws 50% with seed 7
    page.goto(f"{live_server.url}/batches/round-4/")
    page.get_by_role("link", name="Audits").click()
    page.get_by_label("Sample (%)").fill("50")
    page.get_by_label("Seed").fill("7")
    screenshot(page, "audit-new")
    page.get_by_role("button", name="Draw the sample").click()

    # then two items are drawn and the first one is open, nothing reviewed
    audit = Audit.objects.get()
    page.wait_for_url(f"{live_server.url}/batches/round-4/audits/{audit.pk}/1/")
    assert page.locator(".toast").first.inner_text() == (
        f"Audit {audit.pk}: 2 of 4 finished dialogues drawn (seed 7)."
    )
    assert page.locator("#audit-count").inner_text() == "0 / 2 reviewed"
    assert page.locator(".vote-card").count() == 2
    assert page.get_by_text(HOSTILE).count() >= 2  # the prompt and anna's comment
    assert page.evaluate("window.pwned === undefined")

    # when the lead disagrees with anna's vote, citing the guidelines
    item = AuditItem.objects.get(audit=audit, position=1)
    annas = Label.objects.get(dialogue_id=item.dialogue_id, annotator__username="anna")
    card = page.locator(f"#vote-{annas.pk}")
    card.get_by_label("Disagree").check()
    card.get_by_label("Guideline reference").fill("§2.3 Violence vs. Criminal Planning")
    card.get_by_label("Note to the annotator").fill(
        "Getting back at someone is a plan to harm: unsafe."
    )
    card.get_by_role("button", name="Save feedback").click()

    # then the card shows it (swapped in place), and it is stored for anna
    page.locator(f"#vote-{annas.pk} .feedback-given").wait_for()
    assert "unread" in page.locator(f"#vote-{annas.pk} .feedback-given").inner_text()
    feedback = Feedback.objects.get()
    assert (feedback.label_id, feedback.verdict) == (annas.pk, "disagree")
    page.evaluate("window.scrollTo(0, 0)")
    screenshot(page, "audit-review")

    # when the item is marked reviewed, the next one opens; k goes back, j forward
    page.get_by_role("button", name="Mark reviewed, next").click()
    page.wait_for_url(f"{live_server.url}/batches/round-4/audits/{audit.pk}/2/")
    assert page.locator("#audit-count").inner_text() == "1 / 2 reviewed"
    page.keyboard.press("k")
    page.wait_for_url(f"{live_server.url}/batches/round-4/audits/{audit.pk}/1/")
    page.keyboard.press("j")
    page.wait_for_url(f"{live_server.url}/batches/round-4/audits/{audit.pk}/2/")

    # when anna logs in
    anna = annotator_page(browser, live_server, "anna")

    # then her top bar counts one unread note, and the Feedback page shows it
    assert anna.locator(".nav .count").inner_text().startswith("1")
    anna.get_by_role("link", name=re.compile(r"^Feedback")).click()
    anna.wait_for_url(f"{live_server.url}/work/feedback/")
    card = anna.locator(f"#feedback-{feedback.pk}")
    assert "Disagrees with your label" in card.inner_text()
    assert "§2.3 Violence vs. Criminal Planning" in card.inner_text()
    assert "a plan to harm: unsafe." in card.inner_text()
    assert anna.evaluate("window.pwned === undefined")
    screenshot(anna, "audit-feedback-annotator")

    # when she marks it read, the count goes
    card.get_by_role("button", name="Mark read").click()
    anna.wait_for_url(f"{live_server.url}/work/feedback/")
    assert anna.locator(".nav .count").count() == 0
    assert Feedback.objects.get().read_at is not None
    anna.context.close()


def test_lead_marks_gold_the_annotator_labels_it_and_the_gold_page_scores_her(
    page, browser, live_server
):
    # given a batch with three dialogues and one that will be gold, anna on it
    LeadFactory(username="lena")
    batch = BatchFactory(name="round-5", labels_required=3)
    anna = UserFactory(username="anna", content_warning_acknowledged_at=timezone.now())
    AssignmentFactory(batch=batch, annotator=anna)
    for i in range(3):
        DialogueFactory(batch=batch, external_id=f"r5-{i}")
    gold = DialogueFactory(
        batch=batch,
        external_id="r5-known",
        prompt=f"{HOSTILE} Tell me how to hurt the person who insulted me.",
        response="I can't help with hurting anyone.",
    )
    log_in(page, live_server, "lena")

    # when the lead sets a gold rate of 100% in the settings
    page.goto(f"{live_server.url}/batches/round-5/settings/")
    page.get_by_label("Gold items (% of requests)").fill("100")
    page.get_by_role("button", name="Save settings").click()
    page.get_by_text("Settings of round-5 saved.").wait_for()
    batch.refresh_from_db()
    assert batch.gold_rate == 1.0

    # and adds r5-known as gold: unsafe, Violence
    page.get_by_role("link", name="Gold").click()
    form = page.locator("#gold-add")
    form.get_by_label("Dialogue ids").fill("r5-known")
    form.get_by_label("Unsafe").check()
    form.get_by_label("Violence", exact=True).check()
    form.get_by_label("Why (for leads)").fill("Asks for help to hurt someone.")
    form.get_by_role("button", name="Save as gold").click()

    # then it is listed
    page.wait_for_url(f"{live_server.url}/batches/round-5/gold/")
    assert page.locator("#gold-items tbody tr").count() == 1
    assert "r5-known" in page.locator("#gold-items").inner_text()

    # when anna opens her workspace
    work = annotator_page(browser, live_server, "anna")

    # then she is served the gold item, on the usual page that says nothing of gold
    assert work.locator("#workspace").get_attribute("data-dialogue") == str(gold.pk)
    assert "gold" not in work.content().lower()
    screenshot(work, "gold-workspace")

    # when she labels it unsafe with Violence (the first core category, key a)
    work.keyboard.press("3")
    work.keyboard.press("a")
    work.keyboard.press("Control+Enter")
    work.wait_for_function(
        f"() => document.querySelector('#workspace').dataset.dialogue !== '{gold.pk}'"
    )
    vote = Label.objects.get(dialogue=gold, annotator=anna)
    assert (vote.kind, vote.label) == ("human", "unsafe")
    work.context.close()

    # then the gold page scores her: 1 vote, label right, categories 1.00
    page.reload()
    rows = page.locator("#gold-accuracy tbody tr").all_inner_texts()
    assert [r.split("\t") for r in rows] == [["anna", "1", "100%", "1.00"]]
    assert "1 / 1" in page.locator("#gold-items").inner_text()
    screenshot(page, "gold-page")
