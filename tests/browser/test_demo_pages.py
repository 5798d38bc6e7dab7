"""What a lead first sees of the demo: demo-reviewed's agreement page with its jury
section, the adjudication queue, the recorded jury run and the Other texts."""

import io

import pytest
from django.core.management import call_command

from annotation.demo import DEMO_PASSWORD, REVIEWED_BATCH
from jury.models import JuryRun
from tests.browser.conftest import log_in, screenshot

pytestmark = pytest.mark.browser


def log_in_as_lead(page, live_server) -> None:
    log_in(page, live_server, "lead", lands_on=None, password=DEMO_PASSWORD)


def test_a_lead_sees_the_demo_tell_its_story(page, live_server):
    # given the demo, seeded as `make run` does
    call_command("seed_demo", stdout=io.StringIO())
    run = JuryRun.objects.get(batch__name=REVIEWED_BATCH)
    log_in_as_lead(page, live_server)

    # when the lead opens demo-reviewed's agreement page
    page.goto(f"{live_server.url}/batches/{REVIEWED_BATCH}/agreement/")
    page.wait_for_load_state("networkidle")
    screenshot(page, "demo_agreement")
    body = page.locator("main").inner_text()
    # then the three reviewers and the three judges are there
    for name in ("reviewer-a", "reviewer-b", "reviewer-c"):
        assert name in body
    for name in ("demo-smollm2-a", "demo-smollm2-b", "demo-smollm2-c"):
        assert name in body

    # when they open the adjudication queue of the batch
    page.goto(f"{live_server.url}/adjudication/?batch={REVIEWED_BATCH}")
    page.wait_for_load_state("networkidle")
    screenshot(page, "demo_adjudication_queue")
    queue = page.locator("main").inner_text().lower()
    # then splits, humans against the jury and a flag wait for a lead
    assert "split" in queue
    assert "jury" in queue
    assert "flag" in queue

    # when they open the recorded jury run
    page.goto(f"{live_server.url}/jury/runs/{run.pk}/")
    page.wait_for_load_state("networkidle")
    screenshot(page, "demo_jury_run")
    # then it is done, with every recorded vote and a decision per response
    text = page.locator("main").inner_text()
    assert "Done" in text
    assert "111 / 111" in text
    assert "37 dialogues × 3 judges" in text  # noqa: RUF001 (as the page writes it)

    # when they open the Other texts
    page.goto(f"{live_server.url}/other/")
    page.wait_for_load_state("networkidle")
    screenshot(page, "demo_other")
    other = page.locator("main").inner_text().lower()
    # then the texts describe the demo's jailbreaks and its cat, nothing else
    assert "jailbreak" in other
    assert "animal cruelty" in other
    assert "phishing kit" not in other
