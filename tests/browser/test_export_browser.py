"""An admin starts an export in the browser, watches it run and downloads the zip."""

from pathlib import Path
from typing import Any

import pytest

from annotation.export.services import run_snapshot
from annotation.models import ExportSnapshot
from tests.annotation.export.test_views import labelled_batch
from tests.browser.conftest import log_in, screenshot
from tests.factories import AdminFactory

pytestmark = pytest.mark.browser


def test_admin_starts_an_export_and_downloads_it(
    page: Any,
    live_server: Any,
    settings: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
):
    # given an admin, a labelled batch, and no worker: the test runs the snapshot
    from annotation import tasks

    settings.MEDIA_ROOT = tmp_path / "media"
    queued: list[int] = []
    monkeypatch.setattr(tasks.run_export, "delay", queued.append)
    AdminFactory(username="root")
    labelled_batch("demo")
    labelled_batch("other")
    log_in(page, live_server, "root")

    # when they open Exports, then New export, and fill the form
    page.get_by_role("link", name="Exports").click()
    page.get_by_role("link", name="New export").click()
    page.get_by_label("demo (7 dialogues)").check()
    page.get_by_label("Validation", exact=True).fill("0.15")
    page.get_by_label("Test", exact=True).fill("0.05")
    page.get_by_label("Seed").fill("5")
    page.get_by_label("Defensive (needs caution counts as unsafe)").check()
    screenshot(page, "export-form")
    page.get_by_role("button", name="Start export").click()

    # then the snapshot's page shows it waiting for a worker, and keeps polling
    page.wait_for_url(f"{live_server.url}/exports/*/")
    page.locator('[data-status="pending"]').wait_for()
    snapshot = ExportSnapshot.objects.get()
    assert queued == [snapshot.pk]
    assert (snapshot.seed, snapshot.ratios, snapshot.needs_caution_policy) == (
        5,
        [0.8, 0.15, 0.05],
        "defensive",
    )
    assert page.get_by_role("progressbar").get_attribute("aria-valuenow") == "0"
    screenshot(page, "export-pending")

    # when the worker runs it, the page picks the result up by itself
    run_snapshot(snapshot.pk)
    page.locator('[data-status="succeeded"]').wait_for(timeout=15_000)

    # then it shows the counts, the files and the card, and the zip downloads
    assert page.get_by_role("progressbar").get_attribute("aria-valuenow") == "100"
    total = page.locator("#export-counts tr.total").inner_text().split()
    assert total[:2] == ["all", "6"]
    assert page.locator("#export-files tbody tr").count() == 14
    assert page.get_by_role("heading", name="Aegis Studio export: demo").count() == 1
    page.screenshot(path="/tmp/export.png", full_page=True)
    screenshot(page, "export-done")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download zip").click()
    assert download.value.suggested_filename == f"export-{snapshot.pk:05d}.zip"

    # and the list shows the snapshot done, with its rows per split
    page.get_by_role("link", name="All exports").click()
    row = page.locator(f'tr[data-export="{snapshot.pk}"]')
    assert row.locator('[data-status="succeeded"]').count() == 1
    assert row.get_by_role("link", name="Download zip").count() == 1
    screenshot(page, "export-list")
