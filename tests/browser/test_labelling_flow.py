"""An annotator labels with the keyboard only, in Chromium, from login to edits."""

import pytest

from annotation.models import Flag, Label, LabelEdit, Skip
from tests.browser.conftest import screenshot
from tests.factories import (
    PASSWORD,
    AssignmentFactory,
    BatchFactory,
    DialogueFactory,
    UserFactory,
)

pytestmark = pytest.mark.browser


def log_in_with_keys(page, live_server, username: str) -> None:
    """The login page focuses the username field: type, Tab, type, Enter."""
    page.goto(f"{live_server.url}/accounts/login/")
    page.keyboard.type(username)
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")


def current_dialogue(page) -> str:
    return page.locator("#workspace").get_attribute("data-dialogue") or ""


def wait_for_next(page, previous: str) -> str:
    try:
        page.wait_for_function(
            "prev => { const w = document.querySelector('#workspace');"
            " return w && w.getAttribute('data-dialogue') !== prev; }",
            arg=previous,
            timeout=10_000,
        )
    except Exception:
        screenshot(page, "work-stuck")  # what the page showed when it did not move on
        raise
    return current_dialogue(page)


def test_annotator_labels_skips_flags_and_edits_with_the_keyboard_only(
    page, live_server
):
    # given a batch of hostile-looking dialogues assigned to anna
    batch = BatchFactory(name="keyboard")
    anna = UserFactory(username="anna")
    AssignmentFactory(batch=batch, annotator=anna)
    for i in range(6):
        DialogueFactory(
            batch=batch,
            prompt=f"<script>window.pwned = {i}</script> question {i}?",
            response=f'<img src=x onerror="window.pwned = {i}"> answer {i}',
        )
    alerts: list[str] = []
    page.on("dialog", lambda d: (alerts.append(d.message), d.dismiss()))

    # when she logs in and acknowledges the warning, with keys only
    log_in_with_keys(page, live_server, "anna")
    page.wait_for_url(f"{live_server.url}/work/consent/")
    screenshot(page, "work-consent")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live_server.url}/work/")

    # then the dialogue text shows as text, and no script ran
    first = current_dialogue(page)
    assert first
    assert (
        page.locator(".dialogue-text")
        .first.inner_text()
        .startswith("<script>window.pwned")
    )
    assert page.locator(".dialogue-text").nth(1).inner_text().startswith("<img src=x")
    screenshot(page, "work-labelling")

    # when she labels three dialogues: unsafe+Violence, safe, needs caution
    page.keyboard.press("3")
    page.keyboard.press("a")
    page.keyboard.press("Control+Enter")
    second = wait_for_next(page, first)
    page.keyboard.press("1")
    page.keyboard.press("Control+Enter")
    third = wait_for_next(page, second)
    page.keyboard.press("2")
    page.keyboard.press("Control+Enter")
    fourth = wait_for_next(page, third)

    # and skips one with a reason, and flags one as wrong language
    page.keyboard.press("Alt+s")
    page.keyboard.type("not sure about this one")
    page.keyboard.press("Enter")
    fifth = wait_for_next(page, fourth)
    page.keyboard.press("Alt+f")
    page.keyboard.press("2")
    page.keyboard.press("Enter")
    sixth = wait_for_next(page, fifth)

    # and reopens her last label to make it unsafe with Profanity
    page.keyboard.press("Alt+u")
    page.locator(".editing-note").wait_for()
    screenshot(page, "work-editing")
    page.keyboard.press("3")
    page.keyboard.press("l")
    page.keyboard.press("Control+Enter")
    page.locator(".editing-note").wait_for(state="detached")

    # then the database holds exactly that
    votes = {
        label.dialogue_id: (label.label, [c.name for c in label.categories.all()])
        for label in Label.objects.filter(annotator=anna)
    }
    assert votes == {
        int(first): ("unsafe", ["Violence"]),
        int(second): ("safe", []),
        int(third): ("unsafe", ["Profanity"]),
    }
    assert Skip.objects.get(annotator=anna, dialogue_id=int(fourth)).reason == (
        "not sure about this one"
    )
    assert Skip.objects.filter(annotator=anna).count() == 2  # a flag also skips
    flag = Flag.objects.get(annotator=anna)
    assert (flag.dialogue_id, flag.reason) == (int(fifth), "wrong_language")
    edit = LabelEdit.objects.get()
    assert (edit.before["label"], edit.after["label"]) == ("needs_caution", "unsafe")
    # and she is back on the dialogue she had reserved
    assert current_dialogue(page) == sixth
    assert alerts == []
    assert page.evaluate("window.pwned === undefined")

    # and the help overlay lists the keys
    page.keyboard.press("?")
    assert page.get_by_role("dialog", name="Keyboard").is_visible()
    screenshot(page, "work-help")
    page.keyboard.press("Escape")
    assert page.locator("#help-overlay").is_hidden()


def open_workspace_on_a_fake_clock(page, live_server, batch) -> None:
    anna = UserFactory(
        username="anna", content_warning_acknowledged_at="2026-01-01T00:00Z"
    )
    AssignmentFactory(batch=batch, annotator=anna)
    DialogueFactory.create_batch(2, batch=batch)
    page.clock.install()
    log_in_with_keys(page, live_server, "anna")
    page.wait_for_url(f"{live_server.url}/work/")


def test_break_reminder_after_continuous_work(page, live_server):
    # given a batch that reminds after 1 minute of continuous work
    batch = BatchFactory(name="breaks", break_reminder_minutes=1)
    open_workspace_on_a_fake_clock(page, live_server, batch)

    # when she keeps working (a key every 20 seconds) for over a minute
    for _ in range(4):
        page.keyboard.press("1")
        page.clock.fast_forward(20_000)

    # then the reminder shows, and Enter dismisses it
    reminder = page.get_by_role("alertdialog", name="Time for a break")
    reminder.wait_for()
    screenshot(page, "work-break")
    page.keyboard.press("Enter")
    # (waits: the key is handled after press() returns, on a busy machine later)
    reminder.wait_for(state="hidden", timeout=5_000)
    assert reminder.is_hidden()


def test_no_break_reminder_after_a_real_pause(page, live_server):
    batch = BatchFactory(name="pause", break_reminder_minutes=1)
    open_workspace_on_a_fake_clock(page, live_server, batch)

    # when she presses a key, then pauses for six minutes, then works on briefly
    page.keyboard.press("1")
    page.clock.fast_forward(6 * 60_000)
    page.keyboard.press("2")
    page.clock.fast_forward(30_000)

    # then no reminder: the pause was a break
    assert page.locator("#break-overlay").is_hidden()
