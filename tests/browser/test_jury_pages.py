"""The jury's pages in Chromium (issue 11): the judges page for leads and admins, the
new-run form with a judge that cannot run and the dialogues left out, and a run page
that says it is queued with no worker, then running with a rate and the time left.

The workers' records (presence, judge states, votes) are written directly here;
tests/jury/runs/test_worker_e2e.py proves a real worker writes them.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from annotation.facade import ModelVoteIn, record_model_votes
from jury.models import (
    Backend,
    Judge,
    JuryRun,
    RunJudgeState,
    RunStatus,
    Scope,
    WorkerPresence,
)
from jury.runs.services import start_run
from tests.browser.conftest import log_in, screenshot
from tests.factories import (
    AdminFactory,
    BatchFactory,
    DialogueFactory,
    LabelFactory,
    LeadFactory,
)

pytestmark = pytest.mark.browser


def open_as(page, live_server, username: str, path: str) -> None:
    """Log in (tests/browser/conftest.py), then open the page."""
    log_in(page, live_server, username, lands_on=None)
    page.goto(f"{live_server.url}{path}")


def judges(monkeypatch) -> dict[str, Judge]:
    """The Aegis Gemma judge (its model variable unset), the demo's three CPU slots
    and a disabled one."""
    monkeypatch.delenv("JURY_GEMMA_MODEL", raising=False)
    made = {
        "gemma-2-27b": Judge.objects.update_or_create(
            name="gemma-2-27b",
            defaults={
                "backend": Backend.VLLM,
                "model": "${JURY_GEMMA_MODEL}",
                "description": "Gemma-2-27B-it: about 54 GB, one H100",
            },
        )[0]
    }
    for slot, temperature in (("a", 0.0), ("b", 0.7), ("c", 1.0)):
        made[f"demo-smollm2-{slot}"] = Judge.objects.create(
            name=f"demo-smollm2-{slot}",
            backend=Backend.TRANSFORMERS,
            model="smollm2",
            temperature=temperature,
            max_tokens=128,
            prompt_version="aegis-jury-compact-v1",
        )
    made["old-judge"] = Judge.objects.create(
        name="old-judge", backend=Backend.OPENAI, model="m", enabled=False
    )
    return made


def words(locator) -> str:
    """A locator's visible text, whitespace collapsed (flex items break lines)."""
    return " ".join(locator.inner_text().split())


def worker_seen(queues: list[str], *, ago: int = 4) -> WorkerPresence:
    moment = timezone.now() - timedelta(seconds=ago)
    return WorkerPresence.objects.create(
        hostname="jury@laptop",
        queues=queues,
        pid=4242,
        started_at=moment,
        last_seen=moment,
    )


def test_leads_read_the_judges_and_only_admins_get_the_admin_link(
    page, live_server, monkeypatch
):
    # given the judges, a worker on the demo's a and b queues, a lead and an admin
    judges(monkeypatch)
    worker_seen(["jury.demo-smollm2-a", "jury.demo-smollm2-b"])
    LeadFactory(username="lena")
    AdminFactory(username="root")

    # when the lead follows the Jury page's link to the judges
    open_as(page, live_server, "lena", "/jury/")
    assert "${" not in page.content()
    assert page.locator('a[href^="/admin/"]').count() == 0
    screenshot(page, "jury-list-lead")
    page.get_by_role("link", name="Judges", exact=True).click()
    page.wait_for_url(f"{live_server.url}/jury/judges/")

    # then every judge is listed, its model resolved or what to set, and its worker
    gemma = page.locator('tr[data-judge="gemma-2-27b"]')
    assert "not set" in gemma.inner_text()
    assert "set JURY_GEMMA_MODEL" in gemma.inner_text()
    assert "${" not in page.content()
    assert "listening" in page.locator('tr[data-judge="demo-smollm2-a"]').inner_text()
    assert (
        "none seen yet" in page.locator('tr[data-judge="demo-smollm2-c"]').inner_text()
    )
    # and no link leads the lead to the admin's login
    assert page.get_by_role("link", name="Edit judges in the admin").count() == 0
    assert page.locator('a[href^="/admin/"]').count() == 0
    screenshot(page, "jury-judges-lead")

    # when an admin opens it, the admin link is there
    page.context.clear_cookies()
    open_as(page, live_server, "root", "/jury/judges/")
    link = page.get_by_role("link", name="Edit judges in the admin")
    assert link.get_attribute("href") == "/admin/jury/judge/"
    screenshot(page, "jury-judges-admin")


def test_the_new_run_form_disables_what_cannot_run_and_counts_what_waits(
    page, live_server, monkeypatch
):
    # given the judges (a worker on the a queue only) and a batch: 2 dialogues with
    # complete unsafe votes, 3 still waiting (1 or 2 of 3 votes), 1 safe
    made = judges(monkeypatch)
    worker_seen(["jury.demo-smollm2-a"])
    batch = BatchFactory(name="round-7", labels_required=3)
    votes = [
        ("unsafe", "unsafe", "unsafe"),
        ("unsafe", "unsafe", "safe"),
        ("unsafe",),
        ("unsafe", "unsafe"),
        ("unsafe",),
        ("safe", "safe", "safe"),
    ]
    for labels in votes:
        dialogue = DialogueFactory(batch=batch, response="Here is how.")
        for label in labels:
            LabelFactory(dialogue=dialogue, label=label)
    LeadFactory(username="lena")

    # when the lead opens the new-run form on the batch
    open_as(page, live_server, "lena", "/jury/runs/new/?batch=round-7")

    # then the judges that cannot run are disabled with their reason under them
    gemma = page.get_by_role("checkbox", name="gemma-2-27b")
    assert gemma.is_disabled()
    assert not gemma.is_checked()
    assert page.locator(f"#{gemma.get_attribute('aria-describedby')}").inner_text() == (
        "Cannot run: model not set: set JURY_GEMMA_MODEL"
    )
    assert page.get_by_role("checkbox", name="old-judge").is_disabled()
    # and the judges without a worker too, with the command that starts one
    b = page.get_by_role("checkbox", name="demo-smollm2-b")
    assert b.is_disabled()
    assert not b.is_checked()
    assert page.locator(f"#{b.get_attribute('aria-describedby')}").inner_text() == (
        "Cannot run: no worker listening on jury.demo-smollm2-b. Start one with "
        "QUEUES=jury.demo-smollm2-b make jury-worker, then reload this page."
    )
    assert page.get_by_role("checkbox", name="demo-smollm2-a").is_checked()
    assert (
        page.get_by_role("checkbox", name="demo-smollm2-a").get_attribute(
            "aria-describedby"
        )
        is None
    )
    # and the count says what the default scope judges and leaves out
    summary = page.locator("#scope-summary")
    assert summary.inner_text() == (
        "2 dialogues to judge in round-7. 3 left out: still waiting for human "
        "votes (1 or 2 of 3)."
    )
    assert "${" not in page.content()
    screenshot(page, "jury-run-new")

    # when the lead widens the scope with the keyboard
    page.get_by_label("Also judge dialogues still waiting for human votes").focus()
    page.keyboard.press("Space")

    # then the count follows without a reload
    page.wait_for_function(
        "() => document.querySelector('#scope-summary').innerText.startsWith('5 ')"
    )
    assert summary.inner_text() == (
        "5 dialogues to judge in round-7. 3 included although still waiting for "
        "human votes (1 or 2 of 3)."
    )
    assert not made["gemma-2-27b"].runs.exists()
    screenshot(page, "jury-run-new-widened")


def test_a_run_page_says_it_waits_for_a_worker_then_how_fast_it_runs(
    page, live_server, monkeypatch
):
    # given a queued run of two demo judges over 12 responses, no worker anywhere
    made = judges(monkeypatch)
    batch = BatchFactory(name="round-8")
    for i in range(12):
        DialogueFactory(batch=batch, prompt=f"Question {i}?", response=f"Answer {i}.")
    two = [made["demo-smollm2-a"], made["demo-smollm2-b"]]
    run = start_run(
        batch=batch, judges=two, scope=Scope.ALL_RESPONSES, chunk_size=4, enqueue=False
    )
    LeadFactory(username="lena")

    # when the lead opens the run page
    open_as(page, live_server, "lena", f"/jury/runs/{run.pk}/")

    # then it says queued, waiting for a worker on both queues, and how to start one
    progress = page.locator("#run-progress")
    assert progress.get_attribute("data-state") == "queued"
    assert words(page.locator(".run-state")) == (
        "Queued Waiting for a worker: no worker listening on jury.demo-smollm2-a, "
        "jury.demo-smollm2-b."
    )
    cells = page.locator('table.judge-states tr[data-judge="demo-smollm2-b"] td')
    assert [words(cells.nth(i)) for i in range(2)] == [
        "queued 0 of 12 votes",
        "no worker has listened on jury.demo-smollm2-b: start one with "
        "QUEUES=jury.demo-smollm2-b make jury-worker",
    ]
    screenshot(page, "jury-run-queued")

    # when a worker comes up and has voted for a while (written as a worker would:
    # a for 4 minutes, 8 votes; b for 2 minutes, 4 votes)
    worker_seen(["jury.demo-smollm2-a", "jury.demo-smollm2-b"], ago=2)
    dialogues = list(run.targets.values_list("dialogue_id", flat=True))
    for judge, minutes, n in ((two[0], 4, 8), (two[1], 2, 4)):
        RunJudgeState.objects.create(
            run=run,
            judge=judge,
            phase="running",
            worker="jury@laptop",
            worker_pid=4242,
            loading_since=timezone.now() - timedelta(minutes=minutes, seconds=20),
            running_since=timezone.now() - timedelta(minutes=minutes),
        )
        record_model_votes(
            run_key=run.key,
            votes=[ModelVoteIn(d, judge.name, True, "safe") for d in dialogues[:n]],
        )

    # then the page, polling, says running with votes per minute and the time left
    page.wait_for_selector('#run-progress[data-state="running"]')
    text = words(page.locator(".run-state"))
    assert text == "Running 12 of 24 votes · 4.0 votes/min · about 4 min left."
    judge_a = page.locator('table.judge-states tr[data-judge="demo-smollm2-a"] td')
    assert words(judge_a.first) == (
        "running 8 of 12 votes · 2.0 votes/min · about 2 min left"
    )
    assert "jury@laptop listening on jury.demo-smollm2-a" in progress.inner_text()
    # and the votes so far show in the table without a reload
    safe = page.locator("#run-results tbody .badge.safe")
    page.wait_for_function(
        "() => document.querySelectorAll('#run-results tbody .badge.safe').length"
        " === 12"
    )
    assert safe.count() == 12
    screenshot(page, "jury-run-running")

    # when the run finishes, the page says done and stops polling
    JuryRun.objects.filter(pk=run.pk).update(
        status=RunStatus.DONE, finished_at=timezone.now()
    )
    page.wait_for_selector('#run-progress[data-state="done"]')
    assert page.locator("#run-progress").get_attribute("hx-trigger") is None
    page.wait_for_function(
        "() => !document.querySelector('#run-results').hasAttribute('hx-trigger')"
    )
