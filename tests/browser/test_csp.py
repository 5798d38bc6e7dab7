"""Every page a person uses runs under the strict Content-Security-Policy with no
violation: the demo's pages, crawled as an annotator, a lead and an admin.

Chromium reports a violation twice: as a console error ("Refused to apply inline
style because it violates the following Content Security Policy directive ...")
and as a `securitypolicyviolation` event, which an init script collects (init
scripts are not subject to the page's policy)."""

import io
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.core.management import call_command

from accounts.models import User
from annotation import enqueue
from annotation.demo import DEMO_PASSWORD, REVIEWED_BATCH
from annotation.export.params import ExportParams
from annotation.export.services import run_snapshot, start_export
from annotation.labelling import queue
from annotation.models import ExportSnapshot
from jury.models import JuryRun
from tests.browser.conftest import log_in, screenshot

pytestmark = pytest.mark.browser

COLLECT_VIOLATIONS = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", function (e) {
  window.__csp.push(e.violatedDirective + " " + (e.blockedURI || "inline") + " at " +
    e.sourceFile + ":" + e.lineNumber);
});
"""
# Links a crawl must not follow: they act (log out) or leave the HTML pages.
SKIP = re.compile(
    r"^/(accounts/logout|api/|static/|media/)|/download|\.(zip|csv|json)$|[?&]format="
)
# One page per address shape: /batches/demo/audits/3/7/ stands for every audit item.
MAX_PAGES = 120


def shape(url: str) -> str:
    parts = urlsplit(url)
    path = re.sub(r"/\d+(?=/)", "/N", parts.path)
    keys = sorted(p.split("=")[0] for p in parts.query.split("&") if p)
    return path + "?" + "&".join(keys)


def crawl(page: Any, base: str, start: list[str]) -> dict[str, list[str]]:
    """Open `start` and every same-site page linked from what was opened, once per
    address shape; return each page's violations (console and event together)."""
    console: list[str] = []
    page.on(
        "console",
        lambda m: (
            console.append(m.text) if "Content Security Policy" in m.text else None
        ),
    )
    seen: set[str] = set()
    todo = list(start)
    found: dict[str, list[str]] = {}
    while todo and len(found) < MAX_PAGES:
        path = todo.pop(0)
        if shape(path) in seen:
            continue
        seen.add(shape(path))
        console.clear()
        response = page.goto(base + path)
        page.wait_for_load_state("networkidle")
        # a page that sends the person back to the login page was not seen
        assert "/accounts/login/" not in page.url, f"logged out at {path}"
        events = page.evaluate("window.__csp || []")
        found[path] = [*console, *events]
        if response is None or not response.ok:
            continue
        for href in page.eval_on_selector_all("a[href]", "as => as.map(a => a.href)"):
            parts = urlsplit(href)
            if parts.netloc != urlsplit(base).netloc:
                continue
            link = parts.path + (f"?{parts.query}" if parts.query else "")
            if not SKIP.search(link) and shape(link) not in seen:
                todo.append(link)
    return found


@pytest.fixture
def demo(settings: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """The demo as `make run` seeds it, plus a finished export and a consented
    annotator (whose home is then the workspace)."""
    settings.MEDIA_ROOT = tmp_path / "media"
    call_command("seed_demo", stdout=io.StringIO())
    admin = User.objects.get(username="admin")
    with monkeypatch.context() as m:
        m.setattr(enqueue, "later", lambda *args, **kwargs: None)
        snapshot = start_export(
            params=ExportParams(batches=(REVIEWED_BATCH,), seed=1), user=admin
        )
    run_snapshot(snapshot.pk)
    queue.acknowledge_warning(annotator=User.objects.get(username="annotator1"))
    return {
        "export": ExportSnapshot.objects.get(pk=snapshot.pk),
        "run": JuryRun.objects.get(batch__name=REVIEWED_BATCH),
    }


def visit_as(browser: Any, live_server: Any, username: str, start: list[str]) -> dict:
    context = browser.new_context(viewport={"width": 1366, "height": 850})
    context.add_init_script(COLLECT_VIOLATIONS)
    page = context.new_page()
    page.set_default_timeout(30_000)
    try:
        log_in(page, live_server, username, lands_on=None, password=DEMO_PASSWORD)
        return crawl(page, live_server.url, start)
    finally:
        context.close()


def test_no_page_reports_a_csp_violation(browser, live_server, demo):
    # given the demo; when each role opens its pages, and every page linked from them
    visited = {
        "annotator1": visit_as(
            browser,
            live_server,
            "annotator1",
            ["/work/", "/work/history/", "/work/feedback/"],
        ),
        "annotator4": visit_as(browser, live_server, "annotator4", ["/work/consent/"]),
        "lead": visit_as(
            browser,
            live_server,
            "lead",
            [
                "/batches/",
                f"/batches/{REVIEWED_BATCH}/agreement/",
                f"/jury/runs/{demo['run'].pk}/",
                "/adjudication/",
                "/other/",
                "/imports/new/",
                "/jury/runs/new/",
            ],
        ),
        "admin": visit_as(
            browser,
            live_server,
            "admin",
            ["/exports/", f"/exports/{demo['export'].pk}/", "/exports/new/", "/admin/"],
        ),
    }

    # then every page was seen, and none reported a violation
    counts = {who: len(pages) for who, pages in visited.items()}
    assert counts["lead"] >= 25, counts
    assert counts["annotator1"] >= 3, counts
    assert counts["admin"] >= 10, counts
    assert any(p.startswith("/admin/") for p in visited["admin"]), visited["admin"]
    violations = {
        f"{who} {path}": found
        for who, pages in visited.items()
        for path, found in pages.items()
        if found
    }
    assert violations == {}


def test_a_violation_is_reported_when_there_is_one(browser, live_server, db):
    # given a page with an inline style and an inline script (the policy's own test)
    context = browser.new_context()
    context.add_init_script(COLLECT_VIOLATIONS)
    page = context.new_page()
    messages: list[str] = []
    page.on("console", lambda m: messages.append(m.text))
    page.goto(f"{live_server.url}/accounts/login/")

    # when the page adds an inline style and script
    page.evaluate(
        """() => {
        const d = document.createElement("div");
        d.innerHTML = '<p style="color: red">x</p>';
        document.body.append(d);
        const s = document.createElement("script");
        s.textContent = "window.ran = 1";
        document.body.append(s);
    }"""
    )
    page.wait_for_timeout(200)

    # then both are refused, and both ways of hearing of it heard it
    events = page.evaluate("window.__csp")
    assert page.evaluate("window.ran") is None
    assert any(e.startswith("style-src-attr") for e in events), events
    assert any(e.startswith("script-src-elem") for e in events), events
    assert any("Content Security Policy" in m for m in messages), messages
    context.close()


def test_the_changed_pages_look_as_before(page, live_server, demo):
    """Screenshots of the pages whose inline styles moved to app.css (looked at by
    hand; tests/artifacts/csp-*.png), and the bars sized from data-percent."""
    log_in(page, live_server, "lead", lands_on=None, password=DEMO_PASSWORD)
    for name, path in [
        ("batch-progress", f"/batches/{REVIEWED_BATCH}/progress/"),
        ("jury-run", f"/jury/runs/{demo['run'].pk}/"),
        ("agreement", f"/batches/{REVIEWED_BATCH}/agreement/"),
    ]:
        page.goto(live_server.url + path)
        page.wait_for_load_state("networkidle")
        screenshot(page, f"csp-{name}")

    # the batch progress bar is as wide as its number says
    page.goto(f"{live_server.url}/batches/{REVIEWED_BATCH}/progress/")
    bar = page.locator("#batch-progress .progress > div")
    percent = float(bar.get_attribute("data-percent"))
    outer = page.locator("#batch-progress .progress").bounding_box()
    inner = bar.bounding_box()
    assert inner["width"] == pytest.approx(outer["width"] * percent / 100, abs=1.5)

    # the export's page, as the admin sees it
    page.context.clear_cookies()
    log_in(page, live_server, "admin", lands_on=None, password=DEMO_PASSWORD)
    page.goto(f"{live_server.url}/exports/{demo['export'].pk}/")
    page.wait_for_load_state("networkidle")
    screenshot(page, "csp-export-detail")

    # and the workspace, as an annotator who has consented
    page.context.clear_cookies()
    log_in(page, live_server, "annotator1", lands_on=None, password=DEMO_PASSWORD)
    page.goto(f"{live_server.url}/work/")
    page.wait_for_load_state("networkidle")
    screenshot(page, "csp-workspace")
