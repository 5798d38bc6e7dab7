"""The keyboard never corrupts a label (issue 11): after every swap the focus is on the
form, never in a text field; a text field takes letters only once the annotator
entered it; a new result replaces the old toast; nothing covers the fields."""

import io

import pytest
from playwright.sync_api import expect

from annotation.models import Label
from tests.browser.conftest import log_in, screenshot
from tests.browser.test_labelling_flow import current_dialogue, wait_for_next
from tests.factories import (
    AssignmentFactory,
    BatchFactory,
    DialogueFactory,
    UserFactory,
)

pytestmark = pytest.mark.browser

TEXT = "Discriminatory automated decision"
FOCUSED = (
    "(() => { const e = document.activeElement;"
    " return e ? e.tagName + (e.id ? '#' + e.id : '') : ''; })()"
)


def open_workspace(page, live_server, n: int = 3, **batch_fields) -> None:
    batch = BatchFactory(name="focus", **batch_fields)
    anna = UserFactory(
        username="anna", content_warning_acknowledged_at="2026-01-01T00:00Z"
    )
    AssignmentFactory(batch=batch, annotator=anna)
    for i in range(n):
        DialogueFactory(
            batch=batch,
            prompt=f"Which bank customers should an automated system refuse, {i}?",
            response="Those whose postcode is in the wrong part of town.",
        )
    log_in(page, live_server, "anna", lands_on="/work/")


def wait_for_editing(page) -> None:
    page.locator(".editing-note").wait_for()
    page.wait_for_function("() => document.activeElement.id === 'vote-form'")


def test_undo_then_a_letter_ticks_a_category_and_never_types_into_other(
    page, live_server
):
    # given an annotator who labels unsafe + Other with a text, by the keys only
    open_workspace(page, live_server)
    first = current_dialogue(page)
    for key in ["3", "w", "Alt+o"]:
        page.keyboard.press(key)
    assert page.evaluate(FOCUSED) == "INPUT#other-text"  # she entered it on purpose
    page.keyboard.type(TEXT)
    page.keyboard.press("Control+Enter")
    second = wait_for_next(page, first)

    # then on the next dialogue the focus is on the form, and ? opens the key list
    assert page.evaluate(FOCUSED) == "FORM#vote-form"
    page.keyboard.press("?")
    assert page.locator("#help-overlay").is_visible()
    page.keyboard.press("Escape")
    assert page.locator("#other-text").input_value() == ""

    # when she undoes, and presses c (Criminal Planning) and submits the change
    page.keyboard.press("Alt+u")
    wait_for_editing(page)
    assert page.locator("#other-text").input_value() == TEXT
    screenshot(page, "work-after-undo")
    page.keyboard.press("c")
    page.keyboard.press("Control+Enter")
    page.locator(".editing-note").wait_for(state="detached")

    # then the vote has both categories and its Other text untouched
    label = Label.objects.get(annotator__username="anna", dialogue_id=int(first))
    assert label.other_text == TEXT
    assert sorted(c.name for c in label.categories.all()) == [
        "Criminal Planning/Confessions",
        "Other",
    ]
    # and she is back on her reserved dialogue, with the focus on the form again
    assert current_dialogue(page) == second
    assert page.evaluate(FOCUSED) == "FORM#vote-form"


def test_ticking_other_does_not_enter_its_text_box(page, live_server):
    # given the workspace
    open_workspace(page, live_server)

    # when the annotator ticks Other and then presses c
    page.keyboard.press("3")
    page.keyboard.press("w")
    page.keyboard.press("c")

    # then both are categories, nothing was typed, and the box asks for its text
    assert page.locator('input[data-hotkey="w"]').is_checked()
    assert page.locator('input[data-hotkey="c"]').is_checked()
    assert page.locator("#other-text").input_value() == ""
    assert page.evaluate(FOCUSED) != "INPUT#other-text"
    border = page.eval_on_selector(
        "#other-text", "e => getComputedStyle(e).borderTopColor"
    )
    assert border == "rgb(168, 100, 0)"  # var(--caution): it wants text
    screenshot(page, "work-other-wanted")


def test_escape_leaves_a_text_field_and_letters_are_keys_again(page, live_server):
    open_workspace(page, live_server)

    page.keyboard.press("Alt+c")
    page.keyboard.type("abc")
    page.keyboard.press("Escape")
    page.keyboard.press("a")

    assert page.locator("#comment").input_value() == "abc"
    assert page.locator('input[data-hotkey="a"]').is_checked()


def test_a_refused_vote_focuses_its_message_and_replaces_the_saved_toast(
    page, live_server
):
    # given a first vote saved: the toast says so
    open_workspace(page, live_server)
    first = current_dialogue(page)
    page.keyboard.press("1")
    page.keyboard.press("Control+Enter")
    wait_for_next(page, first)
    page.locator("#toasts .toast", has_text="Saved.").wait_for()

    # when the next vote is refused (unsafe with no category), typed from the comment
    page.keyboard.press("3")
    page.keyboard.press("Alt+c")
    page.keyboard.type("sounds like redlining")
    page.keyboard.press("Control+Enter")
    page.locator("#vote-form .form-errors").wait_for()

    # then the old toast is gone, the focus is on the message, not in the comment
    # (once the swap has settled: Playwright's expect waits up to 5 s for it)
    expect(page.locator("#toasts .toast")).to_have_count(0)
    expect(page.locator("#vote-form .form-errors")).to_be_focused()
    assert page.evaluate(FOCUSED) == "DIV"
    screenshot(page, "work-refused")
    # and a letter is a key again: Violence, then the vote saves
    page.keyboard.press("a")
    assert page.locator("#comment").input_value() == "sounds like redlining"
    page.keyboard.press("Control+Enter")
    page.locator("#toasts .toast", has_text="Saved.").wait_for()
    assert Label.objects.filter(annotator__username="anna").count() == 2
    assert (
        Label.objects.get(annotator__username="anna", label="unsafe").comment
        == "sounds like redlining"
    )


def test_a_new_toast_replaces_the_last_one(page, live_server):
    open_workspace(page, live_server)
    first = current_dialogue(page)

    page.keyboard.press("1")
    page.keyboard.press("Control+Enter")
    second = wait_for_next(page, first)
    page.keyboard.press("Alt+s")
    page.keyboard.press("Enter")
    wait_for_next(page, second)

    toasts = page.locator("#toasts .toast")
    toasts.filter(has_text="Skipped").wait_for()
    assert toasts.count() == 1


@pytest.mark.parametrize("height", [850, 700])
def test_the_buttons_never_cover_the_comment_box(page, live_server, height):
    # given a laptop screen, or a short window
    page.set_viewport_size({"width": 1366, "height": height})
    open_workspace(page, live_server)

    # when the annotator goes to the comment
    page.keyboard.press("Alt+c")

    # then the box is on the screen, and what is at its middle is the box itself
    box = page.locator("#comment").bounding_box()
    assert box is not None
    assert box["y"] >= 0
    assert box["y"] + box["height"] <= height
    at_middle = page.evaluate(
        "([x, y]) => document.elementFromPoint(x, y).id",
        [box["x"] + box["width"] / 2, box["y"] + box["height"] / 2],
    )
    assert at_middle == "comment"
    buttons = page.locator(".work-actions").bounding_box()
    assert buttons is not None
    assert buttons["y"] >= box["y"] + box["height"]
    assert buttons["y"] + buttons["height"] <= height  # Submit is on screen too
    screenshot(page, f"work-comment-{height}")


def footer_brightness(page) -> float:
    """The mean brightness (0-255) of the footer's strip in a full-page screenshot."""
    from PIL import Image, ImageStat

    box = page.evaluate(
        "(() => { const r = document.querySelector('footer.site')"
        ".getBoundingClientRect();"
        " return [r.left, r.top + window.scrollY, r.right, r.bottom + window.scrollY];"
        " })()"
    )
    image = Image.open(io.BytesIO(page.screenshot(full_page=True))).convert("L")
    return ImageStat.Stat(image.crop(tuple(int(v) for v in box))).mean[0]


@pytest.mark.parametrize("opener", ["Alt+s", "?"])
def test_a_dialog_backdrop_covers_the_footer_too(page, live_server, opener):
    # given a window shorter than the page, so the footer is below the fold
    page.set_viewport_size({"width": 1366, "height": 600})
    open_workspace(page, live_server)
    undimmed = footer_brightness(page)

    # when the skip dialog or the key list opens
    page.keyboard.press(opener)
    page.wait_for_function(
        "() => document.querySelector('dialog[open], .overlay:not([hidden])')"
    )

    # then the whole page is dimmed, the footer too, in a full-page screenshot
    dimmed = footer_brightness(page)
    assert dimmed < undimmed * 0.7, (undimmed, dimmed)
    # and on the screen, scrolled to the end, the footer is under the backdrop
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    footer = page.locator("footer.site").bounding_box()
    assert footer is not None
    assert footer["y"] < 600
    under = page.evaluate(
        "([x, y]) => { const e = document.elementFromPoint(x, y);"
        " return e.closest('footer') ? 'footer' : e.tagName + '#' + e.id; }",
        [footer["x"] + 20, footer["y"] + footer["height"] / 2],
    )
    assert under in ("DIALOG#skip-dialog", "DIV#help-overlay")
    screenshot(page, f"work-backdrop-{'skip' if opener == 'Alt+s' else 'keys'}")
