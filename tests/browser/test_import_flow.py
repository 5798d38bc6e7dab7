"""A lead logs in, uploads a dataset, and watches the import finish in the browser."""

from pathlib import Path

import pytest

from annotation.models import Dialogue
from tests.browser.conftest import log_in, screenshot
from tests.factories import DialogueFactory, LeadFactory

pytestmark = pytest.mark.browser


def test_lead_uploads_a_file_and_sees_the_progress_bar_finish(
    page, live_server, celery_worker, data_dir: Path
):
    # given a lead on the import page
    LeadFactory(username="lena")
    log_in(page, live_server, "lena")
    page.get_by_role("link", name="Imports").click()
    page.get_by_role("link", name="New import").click()
    screenshot(page, "import-form")

    # when they upload the OpenAI moderation set into a new batch
    page.get_by_label("File", exact=True).set_input_files(
        str(data_dir / "openai-moderation" / "samples-1680.jsonl.gz")
    )
    page.get_by_label("Batch", exact=True).fill("moderation")
    page.get_by_label("Create the batch if it is new").check()
    page.get_by_role("button", name="Start import").click()

    # then the progress page fills up and reports the counts
    page.wait_for_url(f"{live_server.url}/imports/*/")
    page.locator('[data-status="succeeded"]').wait_for(timeout=60_000)
    bar = page.get_by_role("progressbar")
    assert bar.get_attribute("aria-valuenow") == "100"
    stats = page.locator(".stat").all_inner_texts()
    assert "1670\nimported" in stats
    assert "10\nduplicates skipped" in stats
    screenshot(page, "import-done")
    assert Dialogue.objects.filter(batch__name="moderation").count() == 1670


def test_hostile_text_is_shown_as_text(page, live_server):
    # given a dialogue whose prompt is a script tag and a spreadsheet formula
    LeadFactory(username="lena")
    dialogue = DialogueFactory(
        prompt="<script>window.pwned = 1</script><b>bold?</b>",
        response='=HYPERLINK("http://example.org","x")',
    )
    log_in(page, live_server, "lena")

    # when the lead opens the batch
    page.goto(f"{live_server.url}/batches/{dialogue.batch.name}/")

    # then the text is visible literally and nothing ran
    assert (
        page.get_by_text("<script>window.pwned = 1</script>", exact=False).count() == 1
    )
    assert page.evaluate("window.pwned === undefined")
    assert page.locator("main b", has_text="bold?").count() == 0
    screenshot(page, "batch-hostile-text")
