"""Adjudication in Chromium (issue 11): a refused decision goes to its first field in
error, the focus is never left in a text field, and the queue leaves out what is
still waiting for votes, saying so."""

import pytest

from annotation.models import Adjudication
from tests.annotation.adjudication.data import add_votes
from tests.browser.conftest import log_in, screenshot
from tests.browser.test_adjudication_browser import split_batch
from tests.factories import DialogueFactory, LeadFactory

pytestmark = pytest.mark.browser

FOCUSED = (
    "(() => { const e = document.activeElement;"
    " return e ? e.tagName + (e.id ? '#' + e.id : '') + (e.value ? '=' + e.value : '')"
    " : ''; })()"
)


def log_in_as_lena(page, live_server) -> None:
    LeadFactory(username="lena")
    log_in(page, live_server, "lena")


def in_viewport(page, selector: str) -> bool:
    return page.eval_on_selector(
        selector,
        "e => { const r = e.getBoundingClientRect();"
        " return r.top >= 0 && r.bottom <= window.innerHeight; }",
    )


def test_a_refused_decision_goes_to_the_reason_below_the_fold(page, live_server):
    # given a split dialogue and a lead on its page, on a laptop screen
    _, (first, _second) = split_batch()
    log_in_as_lena(page, live_server)
    page.goto(f"{live_server.url}/adjudication/{first.pk}/")

    # when she decides with label, category and confidence but no reason
    for key in ["3", "a", "9"]:
        page.keyboard.press(key)
    page.keyboard.press("Control+Enter")
    page.locator("#decision-form .form-errors").wait_for()

    # then the reason select, the only field in error, is on screen and has the focus
    assert page.evaluate(FOCUSED) == "SELECT#reason"
    assert in_viewport(page, "#reason")
    assert (
        page.locator("#reason-errors").inner_text() == "Say why the votes needed you."
    )
    screenshot(page, "adjudication-refused-reason")
    assert not Adjudication.objects.exists()

    # when she picks the reason with the keyboard and leaves the select
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Escape")
    # then letters are keys again (b ticks Sexual), and the decision goes through
    page.keyboard.press("b")
    assert page.locator('input[name="categories"][value="Sexual"]').is_checked()
    page.keyboard.press("Control+Enter")
    page.locator("#toasts .toast").wait_for()
    assert Adjudication.objects.get().categories == ["Violence", "Sexual"]


def test_a_refused_label_focuses_the_label_not_a_text_field(page, live_server):
    # given a lead who writes a note and decides without a prompt label
    _, (first, _second) = split_batch()
    log_in_as_lena(page, live_server)
    page.goto(f"{live_server.url}/adjudication/{first.pk}/")
    page.keyboard.press("Alt+c")
    page.keyboard.type("unclear")
    page.keyboard.press("Control+Enter")
    page.locator("#decision-form .form-errors").wait_for()

    # then the first field in error (the prompt label) has the focus, not the note
    assert page.evaluate(FOCUSED) == "INPUT=safe"
    assert page.locator("#note").input_value() == "unclear"
    # and a digit is a key: 3 chooses unsafe
    page.keyboard.press("3")
    assert page.locator('input[name="prompt_label"][value="unsafe"]').is_checked()
    assert page.locator("#note").input_value() == "unclear"


def test_the_queue_says_what_waits_for_votes_and_lists_it_on_request(page, live_server):
    # given two complete splits and one split with two of its three votes
    batch, _ = split_batch()
    waiting = DialogueFactory(
        batch=batch, external_id="r5-waiting", prompt="Is it fine to read his texts?"
    )
    add_votes(waiting, "safe", "unsafe")
    log_in_as_lena(page, live_server)

    # when she opens the queue
    page.goto(f"{live_server.url}/adjudication/")

    # then the waiting one is not listed, and the page says so
    rows = page.locator("#adjudication-table tbody tr")
    assert rows.count() == 2
    notice = page.locator("#queue-waiting")
    assert notice.inner_text().startswith("1 more dialogue has disagreeing votes")
    screenshot(page, "adjudication-queue-waiting")

    # when she lists them too
    notice.get_by_role("link", name="List them too").click()
    page.wait_for_url(f"{live_server.url}/adjudication/?incomplete=1")

    # then all three are listed, the waiting one with its count
    assert rows.count() == 3
    assert page.locator("#id_incomplete").is_checked()
    assert page.locator(
        f'tr[data-dialogue="{waiting.pk}"] .waiting-votes'
    ).inner_text() == ("votes 2 of 3")
    screenshot(page, "adjudication-queue-widened")
