"""The import page in each of its states, as a lead sees it in Chromium: running,
done, failed on some rows, and failed on the file as a whole."""

import json
from pathlib import Path

import pytest

from annotation.imports.jobs import run_import_job
from annotation.models import ImportJob, JobStatus
from tests.browser.conftest import log_in, screenshot
from tests.factories import BatchFactory, LeadFactory

pytestmark = pytest.mark.browser


def _imported(tmp_path: Path, name: str, content: bytes, batch: str) -> ImportJob:
    """An upload run to its end by the import code, as the worker runs it."""
    path = tmp_path / name
    path.write_bytes(content)
    job = ImportJob.objects.create(
        batch_name=batch, file_path=str(path), original_name=name
    )
    return run_import_job(job_id=job.pk)


def test_a_running_import_shows_how_far_it_is(page, live_server):
    # given an import a worker is half-way through
    LeadFactory(username="lena")
    BatchFactory(name="moderation")
    job = ImportJob.objects.create(
        batch_name="moderation",
        file_path="/nonexistent",
        original_name="samples.jsonl",
        status=JobStatus.RUNNING,
        phase="reading",
        rows_total=1680,
        rows_read=840,
    )
    log_in(page, live_server, "lena")

    # when the lead opens it
    page.goto(f"{live_server.url}/imports/{job.pk}/")

    # then a bar shows half of the rows read, and nothing speaks of failure
    bar = page.get_by_role("progressbar", name="Import progress")
    assert bar.get_attribute("aria-valuenow") == "50"
    assert page.locator(".import-failed").count() == 0
    assert page.locator(".stat").first.inner_text() == "840 / 1680\nrows read"
    screenshot(page, "import-running")


def test_a_finished_import_shows_a_full_bar(page, live_server, tmp_path):
    # given an import of three prompts that finished
    LeadFactory(username="lena")
    BatchFactory(name="target")
    rows = [{"id": f"r{i}", "prompt": f"prompt {i}"} for i in range(3)]
    content = "".join(json.dumps(r) + "\n" for r in rows).encode()
    job = _imported(tmp_path, "rows.jsonl", content, "target")
    log_in(page, live_server, "lena")

    # when the lead opens it
    page.goto(f"{live_server.url}/imports/{job.pk}/")

    # then the badge says done and the bar is full
    assert page.locator('[data-status="succeeded"]').inner_text() == "Done"
    bar = page.get_by_role("progressbar", name="Import progress")
    assert bar.get_attribute("aria-valuenow") == "100"
    screenshot(page, "import-succeeded")


def test_an_import_that_failed_on_rows_lists_them_without_a_bar(
    page, live_server, tmp_path
):
    # given an import whose second and fourth lines are wrong
    LeadFactory(username="lena")
    BatchFactory(name="target")
    lines = [
        {"id": "a", "prompt": "hello"},
        {"id": "b"},
        {"id": "c", "prompt": "hi"},
        {"id": "d", "turns": [{"role": "robot", "content": "x"}]},
    ]
    content = "".join(json.dumps(r) + "\n" for r in lines).encode()
    job = _imported(tmp_path, "bad.jsonl", content, "target")
    log_in(page, live_server, "lena")

    # when the lead opens it
    page.goto(f"{live_server.url}/imports/{job.pk}/")

    # then it says failed in words, with the rows and their lines, and no bar
    assert page.locator('[data-status="failed"]').inner_text() == "Failed"
    alert = page.get_by_role("alert")
    assert alert.locator("h2").inner_text() == "Import failed"
    assert "2 rows have errors; nothing was written." in alert.inner_text()
    assert page.get_by_role("progressbar").count() == 0
    lines_shown = page.locator("table.import-errors tbody tr td:first-child")
    assert lines_shown.all_inner_texts() == ["2", "4"]
    screenshot(page, "import-failed-rows")


def test_an_import_of_a_latin1_file_says_how_to_convert_it(page, live_server, tmp_path):
    # given an import of a CSV saved as Latin-1
    LeadFactory(username="lena")
    BatchFactory(name="target")
    content = "id,prompt\n1,tea\n2,café\n".encode("latin-1")
    job = _imported(tmp_path, "rows.csv", content, "target")
    log_in(page, live_server, "lena")

    # when the lead opens it
    page.goto(f"{live_server.url}/imports/{job.pk}/")

    # then the failure is the file's: the message and the advice, no table, no bar
    alert = page.get_by_role("alert")
    assert "The file could not be imported; nothing was written." in (
        alert.inner_text()
    )
    reason = alert.locator(".import-failed-reason").inner_text()
    assert reason.startswith("rows.csv: not UTF-8 text (byte 0xE9 at offset 21")
    assert "iconv -f latin1 -t utf-8 rows.csv > rows-utf8.csv" in reason
    assert page.locator("table").count() == 0
    assert page.get_by_role("progressbar").count() == 0
    screenshot(page, "import-failed-file")
