"""The jury pages: runs, progress, each dialogue's votes side by side, filters; the
judges page, the new-run form's judges and counts, a run's state in words."""

import re
from datetime import timedelta
from html.parser import HTMLParser

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from annotation.facade import ModelVoteIn, record_model_votes
from jury.models import (
    Backend,
    Judge,
    JuryRun,
    RunDialogue,
    RunJudgeState,
    Scope,
    WorkerPresence,
)
from jury.runs.services import decide_dialogues
from tests.conftest import login
from tests.factories import BatchFactory, DialogueFactory, LabelFactory


def hx(target: str) -> dict[str, str]:
    """The headers of htmx asking for the fragment `target` (its hx-target)."""
    return {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": target}


pytestmark = pytest.mark.django_db


class Page(HTMLParser):
    """A page's text per element: tables as rows of cells, elements by id or class,
    checkboxes by name (whitespace collapsed)."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.boxes: dict[str, dict[str, dict[str, bool]]] = {}
        self.texts: dict[str, list[str]] = {}
        self._cell: list[str] | None = None
        self._open: list[tuple[str, str | None]] = []  # (tag, key or None)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag in ("div", "p", "br") and self._cell is not None:
            self._cell.append(" ")  # a block starts: the words stay apart
        if tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag in ("td", "th") and self.tables:
            self._cell = []
        elif tag == "input" and found.get("type") == "checkbox":
            self.boxes.setdefault(str(found.get("name")), {})[
                str(found.get("value"))
            ] = {"disabled": "disabled" in found, "checked": "checked" in found}
        if tag in ("input", "br", "img", "meta", "link"):
            return
        key = found.get("id") or (found.get("class") or "").split(" ")[0] or None
        if key and key not in self.texts:
            self.texts[key] = []
        else:
            key = None
        self._open.append((tag, key))

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        while self._open:
            opened, _ = self._open.pop()
            if opened == tag:
                break

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        for _, key in self._open:
            if key is not None:
                self.texts[key].append(data)


def parse(html: str) -> Page:
    page = Page()
    page.feed(html)
    return page


def squash(html: str) -> str:
    """The text of an HTML fragment, whitespace collapsed."""
    return " ".join(re.sub(r"<[^>]+>", " ", html).split()).replace(" .", ".")


def fragment(html: str, key: str) -> str:
    """The text of the first element whose id (or first class) is `key`."""
    return " ".join("".join(parse(html).texts[key]).split())


def table_rows(html: str, *, first_header: str) -> list[list[str]]:
    [table] = [t for t in parse(html).tables if t and t[0][:1] == [first_header]]
    return table[1:]


def checkboxes(html: str, name: str) -> dict[str, dict[str, bool]]:
    return parse(html).boxes[name]


def make_run(
    n_dialogues: int = 3, *, votes: bool = True
) -> tuple[JuryRun, list[Judge]]:
    """A run whose votes are written directly (no model): a full picture to render;
    without `votes`, a run that has just been queued."""
    batch = BatchFactory()
    judges = [
        Judge.objects.get_or_create(
            name=name,
            defaults={"backend": Backend.OPENAI, "model": "m", "endpoint": "x"},
        )[0]
        for name in ("a-judge", "b-judge", "c-judge")
    ]
    run = JuryRun.objects.create(batch=batch, scope=Scope.ALL_RESPONSES)
    run.judges.set(judges)
    dialogues = [
        DialogueFactory(batch=batch, prompt=f"prompt {i}", response=f"response {i}")
        for i in range(n_dialogues)
    ]
    RunDialogue.objects.bulk_create(RunDialogue(run=run, dialogue=d) for d in dialogues)
    if not votes:
        return run, judges
    written = []
    for i, d in enumerate(dialogues):
        written += [
            ModelVoteIn(d.pk, "a-judge", True, "unsafe", ("Violence",)),
            ModelVoteIn(d.pk, "b-judge", True, "unsafe" if i == 0 else "safe", ()),
            ModelVoteIn(
                d.pk,
                "c-judge",
                False,
                None,
                raw_output="<script>alert('judge')</script> not sure",
                details={"error": "no verdict found"},
            ),
        ]
    record_model_votes(run_key=run.key, votes=written)
    decide_dialogues(run=run, dialogue_ids=[d.pk for d in dialogues])
    return run, judges


def test_the_run_page_shows_votes_side_by_side_escaped(lead_client: Client):
    run, _ = make_run()

    html = lead_client.get(f"/jury/runs/{run.pk}/").content.decode()

    # every judge has a column, the invalid vote's raw output is shown as text
    for name in ("a-judge", "b-judge", "c-judge"):
        assert f"<th>{name}</th>" in html
    assert "&lt;script&gt;alert(&#x27;judge&#x27;)&lt;/script&gt; not sure" in html
    assert "<script>alert('judge')" not in html
    # decisions: prompt 0 has 2 unsafe of 2 valid, the others split 1-1
    assert (
        html.count(
            'class="badge unsafe">Unsafe</span>\n          \n          <div class="subtle">Violence'
        )
        >= 0
    )
    assert html.count('class="badge needs_review"') == 2
    assert "2 of 2 valid votes unsafe" in html


@pytest.mark.parametrize(
    ("show", "expected"),
    [
        ("", 3),
        ("unsafe", 1),
        ("needs_review", 2),
        ("disagreement", 2),
        ("invalid", 3),
        ("undecided", 0),
    ],
)
def test_filters_select_the_right_dialogues(
    lead_client: Client, show: str, expected: int
):
    run, _ = make_run()
    response = lead_client.get(f"/jury/runs/{run.pk}/", {"show": show})
    assert len(response.context["page"].object_list) == expected


def test_the_agreement_matrix_counts_valid_votes_only(lead_client: Client):
    run, _ = make_run()
    response = lead_client.get(f"/jury/runs/{run.pk}/")
    matrix = {a.name: row for a, row in response.context["matrix"]}
    # a and b agree on 1 of 3; c has no valid vote to compare
    assert matrix["a-judge"][1] == pytest.approx(1 / 3)
    assert matrix["a-judge"][2] is None


def test_the_progress_fragment_is_what_htmx_polls(lead_client: Client):
    run, _ = make_run()
    html = lead_client.get(
        f"/jury/runs/{run.pk}/", **hx("run-progress")
    ).content.decode()
    assert html.lstrip().startswith('<section id="run-progress"')
    assert 'aria-valuenow="100"' in html
    assert "<html" not in html


def test_the_votes_refresh_while_the_run_goes_on_and_stop_when_it_is_done(
    lead_client: Client,
):
    # given a run that has just been queued: its votes say pending
    run, _ = make_run(votes=False)
    page = lead_client.get(f"/jury/runs/{run.pk}/?show=&page=1").content.decode()
    assert page.count('<span class="subtle">pending</span>') == 9
    assert (
        f'<div id="run-results" hx-get="/jury/runs/{run.pk}/?show=&amp;page=1" '
        'hx-trigger="every 5s" hx-target="#run-results" hx-swap="outerHTML">' in page
    )

    # when the votes are written and the page polls its results
    record_model_votes(
        run_key=run.key,
        votes=[
            ModelVoteIn(d, judge, True, "safe", ())
            for d in RunDialogue.objects.filter(run=run).values_list(
                "dialogue_id", flat=True
            )
            for judge in ("a-judge", "b-judge", "c-judge")
        ],
    )
    JuryRun.objects.filter(pk=run.pk).update(status="done")
    part = lead_client.get(
        f"/jury/runs/{run.pk}/", **hx("run-results")
    ).content.decode()

    # then the fragment shows them, and a finished run polls no more
    assert part.lstrip().startswith('<div id="run-results">')
    assert "<html" not in part
    assert "pending" not in part
    assert part.count('<span class="badge safe">Safe</span>') == 9


def test_the_run_page_query_count_does_not_grow_with_the_run(
    lead_client: Client, django_assert_max_num_queries
):
    small, _ = make_run(3)
    with django_assert_max_num_queries(25) as captured:
        lead_client.get(f"/jury/runs/{small.pk}/")
    large, _ = make_run(30)
    with django_assert_max_num_queries(len(captured.captured_queries)):
        lead_client.get(f"/jury/runs/{large.pk}/")


def test_the_polled_progress_counts_the_votes_once_whatever_the_runs_size(
    lead_client: Client,
):
    # given a small run and a large one
    small, _ = make_run(3)
    large, _ = make_run(30)

    # when htmx polls each one's progress
    def polled(run: JuryRun) -> list[str]:
        with CaptureQueriesContext(connection) as captured:
            response = lead_client.get(f"/jury/runs/{run.pk}/", **hx("run-progress"))
        assert response.status_code == 200
        return [q["sql"] for q in captured.captured_queries]

    small_queries, large_queries = polled(small), polled(large)

    # then both read the same queries, and the bar counted no vote of its own: the
    # votes are counted once, by the progress (grouped by judge)
    assert len(small_queries) == len(large_queries)
    votes = [q for q in large_queries if 'FROM "annotation_label"' in q]
    assert len(votes) == 1
    assert "GROUP BY" in votes[0]


def test_starting_a_run_from_the_page(
    lead_client: Client, django_capture_on_commit_callbacks
):
    batch = BatchFactory(name="start")
    DialogueFactory(batch=batch, response="an answer")
    judge = Judge.objects.create(
        name="x-judge", backend=Backend.OPENAI, model="m", endpoint="x"
    )
    seen(["jury.x-judge"])

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = lead_client.post(
            "/jury/runs/new/",
            {
                "batch": "start",
                "judges": [judge.pk],
                "scope": "all_responses",
                "chunk_size": 8,
            },
        )

    run = JuryRun.objects.get()
    assert response["Location"] == f"/jury/runs/{run.pk}/"
    assert (run.chunk_size, list(run.judges.all())) == (8, [judge])
    assert run.targets.count() == 1
    assert len(callbacks) == 1  # the chunks are queued once the run is committed


def test_a_run_that_cannot_start_says_why(lead_client: Client):
    BatchFactory(name="empty")
    judge = Judge.objects.create(
        name="x-judge", backend=Backend.OPENAI, model="m", endpoint="x"
    )
    seen(["jury.x-judge"])
    response = lead_client.post(
        "/jury/runs/new/",
        {
            "batch": "empty",
            "judges": [judge.pk],
            "scope": "unsafe_majority",
            "chunk_size": 8,
        },
    )
    assert response.status_code == 200
    assert "No dialogue to judge" in response.content.decode()
    assert JuryRun.objects.count() == 0


def test_jury_pages_are_for_leads(annotator_client: Client):
    run, _ = make_run()
    for url in ("/jury/", "/jury/runs/new/", f"/jury/runs/{run.pk}/"):
        assert annotator_client.get(url).status_code == 403


# --- the judges page, the new-run form, a run's state (issue 11) --------------------


def no_jury_variables(monkeypatch) -> None:
    for name in ("JURY_MIXTRAL_MODEL", "JURY_NEMO_MODEL", "JURY_GEMMA_MODEL"):
        monkeypatch.delenv(name, raising=False)


def seen(queues: list[str], *, hostname: str = "jury@host", ago: int = 3) -> None:
    """A worker that recorded itself `ago` seconds ago (jury.presence)."""
    moment = timezone.now() - timedelta(seconds=ago)
    WorkerPresence.objects.create(
        hostname=hostname, queues=queues, pid=1, started_at=moment, last_seen=moment
    )


def test_the_judges_page_shows_leads_every_judge_without_the_admin_link(
    lead_client: Client, monkeypatch, django_assert_max_num_queries
):
    # given the Aegis judges with no model variable set, and one CPU judge on a
    # queue a worker listens on
    no_jury_variables(monkeypatch)
    Judge.objects.create(
        name="cpu-judge", backend=Backend.TRANSFORMERS, model="smollm2"
    )
    seen(["jury.cpu-judge"])

    # when a lead opens the judges page (a fixed number of queries)
    with django_assert_max_num_queries(8):
        response = lead_client.get("/jury/judges/")

    # then every judge is listed with what it needs; no raw ${...}, no admin link
    assert response.status_code == 200
    html = response.content.decode()
    assert "${" not in html
    assert "/admin/" not in html
    rows = {row[0].split()[0]: row for row in table_rows(html, first_header="Judge")}
    assert list(rows) == [
        "cpu-judge",
        "gemma-2-27b",
        "mistral-nemo-12b",
        "mixtral-8x22b",
    ]
    assert rows["gemma-2-27b"][2:] == [
        "not set set JURY_GEMMA_MODEL",
        "aegis-jury-v1 temperature 0.0 · at most 256 tokens",
        "jury.gemma-2-27b",
        "no model not set",
        "no worker none seen yet",
    ]
    assert rows["cpu-judge"][2] == "smollm2"
    assert rows["cpu-judge"][-2] == "yes"
    assert re.fullmatch(
        r"listening jury@host · seen [3-9] s ago", rows["cpu-judge"][-1]
    )


def test_the_judges_page_links_admins_to_the_admin(client: Client, admin_user):
    login(client, admin_user)
    html = client.get("/jury/judges/").content.decode()
    assert 'href="/admin/jury/judge/"' in html
    assert client.get("/jury/").content.decode().count('href="/admin/jury/judge/"') == 1


def test_the_jury_page_shows_resolved_models_and_no_admin_link_to_leads(
    lead_client: Client, monkeypatch
):
    no_jury_variables(monkeypatch)
    monkeypatch.setenv("JURY_NEMO_MODEL", "/models/nemo-12b")

    html = lead_client.get("/jury/").content.decode()

    assert "${" not in html
    assert "/admin/" not in html
    assert 'href="/jury/judges/"' in html
    rows = {row[0].split()[0]: row for row in table_rows(html, first_header="Judge")}
    assert rows["mistral-nemo-12b"][2] == "/models/nemo-12b from JURY_NEMO_MODEL"
    assert rows["gemma-2-27b"][2] == "not set set JURY_GEMMA_MODEL"


def test_the_new_run_form_disables_judges_that_cannot_run_and_says_why(
    lead_client: Client, monkeypatch
):
    # given the Aegis judges without their models, a disabled judge, one judge whose
    # queue has a worker and one whose queue has none
    no_jury_variables(monkeypatch)
    Judge.objects.create(
        name="off-judge", backend=Backend.OPENAI, model="m", enabled=False
    )
    heard = Judge.objects.create(name="heard", backend=Backend.OPENAI, model="m")
    lonely = Judge.objects.create(name="lonely", backend=Backend.OPENAI, model="m")
    seen(["jury.heard"])

    html = lead_client.get("/jury/runs/new/").content.decode()

    # then the judges that cannot run are disabled, with the reason under the box
    boxes = checkboxes(html, "judges")
    gemma = Judge.objects.get(name="gemma-2-27b")
    off = Judge.objects.get(name="off-judge")
    assert boxes[str(gemma.pk)] == {"disabled": True, "checked": False}
    assert boxes[str(off.pk)] == {"disabled": True, "checked": False}
    assert boxes[str(heard.pk)] == {"disabled": False, "checked": True}
    assert boxes[str(lonely.pk)] == {"disabled": True, "checked": False}
    assert "Cannot run: model not set: set JURY_GEMMA_MODEL" in html
    assert "Cannot run: disabled in its configuration" in html
    # and the judge with no worker says how to start one; never a ${
    assert (
        html.count(
            "Cannot run: no worker listening on <code>jury.lonely</code>. Start one with "
            "<code>QUEUES=jury.lonely make jury-worker</code>, then reload this page."
        )
        == 1
    )
    assert "listening on <code>jury.heard</code>" not in html
    assert "${" not in html


def test_posting_a_judge_that_cannot_run_is_refused_by_the_form(
    lead_client: Client, monkeypatch
):
    no_jury_variables(monkeypatch)
    batch = BatchFactory(name="refuse")
    DialogueFactory(batch=batch, response="an answer")
    gemma = Judge.objects.get(name="gemma-2-27b")

    response = lead_client.post(
        "/jury/runs/new/",
        {"batch": "refuse", "judges": [gemma.pk], "scope": "all_responses"}
        | {"chunk_size": 8},
    )

    assert response.status_code == 200
    assert (
        "Not available: gemma-2-27b (model not set: set JURY_GEMMA_MODEL)."
        in response.content.decode()
    )
    assert JuryRun.objects.count() == 0


def test_posting_a_judge_whose_queue_has_no_worker_is_refused(lead_client: Client):
    # given a judge that could run, but no worker listens on its queue
    batch = BatchFactory(name="unheard")
    DialogueFactory(batch=batch, response="an answer")
    judge = Judge.objects.create(name="unheard", backend=Backend.OPENAI, model="m")

    # when the form is posted with it anyway
    response = lead_client.post(
        "/jury/runs/new/",
        {"batch": "unheard", "judges": [judge.pk], "scope": "all_responses"}
        | {"chunk_size": 8},
    )

    # then the form says why, and no run is queued
    assert response.status_code == 200
    assert (
        "Not available: unheard (no worker listening on jury.unheard)."
        in response.content.decode()
    )
    assert JuryRun.objects.count() == 0


def test_the_new_run_form_counts_what_the_scope_judges_and_leaves_out(
    lead_client: Client,
):
    # given a batch with one complete unsafe dialogue and two still waiting
    batch = BatchFactory(name="counted", labels_required=3)
    for labels in (("unsafe",) * 3, ("unsafe",), ("unsafe", "unsafe")):
        dialogue = DialogueFactory(batch=batch, response="an answer")
        for label in labels:
            LabelFactory(dialogue=dialogue, label=label)

    # when the form opens on the batch, and htmx asks again with the box ticked
    page = lead_client.get("/jury/runs/new/", {"batch": "counted"}).content.decode()
    widened = lead_client.get(
        "/jury/runs/new/",
        {"batch": "counted", "scope": "unsafe_majority", "include_incomplete": "on"},
        **hx("scope-summary"),
    ).content.decode()

    # then the summary says what is judged and what waits
    assert squash(fragment(page, "scope-summary")) == (
        "1 dialogue to judge in counted. 2 left out: still waiting for human votes "
        "(1 or 2 of 3)."
    )
    assert widened.lstrip().startswith('<div id="scope-summary"')
    assert squash(widened) == (
        "3 dialogues to judge in counted. 2 included although still waiting for "
        "human votes (1 or 2 of 3)."
    )


def test_the_run_page_says_a_queued_run_waits_for_a_worker(lead_client: Client):
    # given a run with no vote yet, whose judges' queues have no worker
    run, _ = make_run(votes=False)

    html = lead_client.get(
        f"/jury/runs/{run.pk}/", **hx("run-progress")
    ).content.decode()

    # then it says queued, names the queues, and keeps polling
    assert 'data-state="queued"' in html
    assert squash(fragment(html, "run-state")) == (
        "Queued Waiting for a worker: no worker listening on jury.a-judge, "
        "jury.b-judge, jury.c-judge."
    )
    assert html.count("start one with <code>QUEUES=jury.") == 3
    assert 'hx-trigger="every 2s"' in html


def test_the_run_page_shows_the_rate_and_time_left_of_a_running_judge(
    lead_client: Client,
):
    # given a run whose judge a has voted on 2 of 3 dialogues in the 2 minutes since
    # its worker loaded the model
    run, judges = make_run(votes=False)
    run.judges.set(judges[:1])
    dialogues = list(run.targets.values_list("dialogue_id", flat=True))
    record_model_votes(
        run_key=run.key,
        votes=[ModelVoteIn(d, "a-judge", True, "safe") for d in dialogues[:2]],
    )
    RunJudgeState.objects.create(
        run=run,
        judge=judges[0],
        phase="running",
        worker="jury@host",
        running_since=timezone.now() - timedelta(minutes=2),
    )
    seen(["jury.a-judge"])

    html = lead_client.get(f"/jury/runs/{run.pk}/").content.decode()

    # then the page says running 2 of 3, one vote a minute, about a minute left
    assert 'data-state="running"' in html
    assert squash(fragment(html, "run-state")) == (
        "Running 2 of 3 votes · 1.0 votes/min · about 1 min left."
    )
    assert "</span> 2 of 3 votes · 1.0 votes/min · about 1 min left</td>" in html
    assert 'hx-trigger="every 2s"' in html


def test_a_finished_or_failed_run_page_stops_polling(lead_client: Client):
    done, _ = make_run()
    JuryRun.objects.filter(pk=done.pk).update(
        status="done", finished_at=done.created_at + timedelta(seconds=75)
    )
    run_failed, _ = make_run(votes=False)
    JuryRun.objects.filter(pk=run_failed.pk).update(
        status="failed", error="a-judge: BackendError: cannot load model 'x'"
    )

    done_html = lead_client.get(f"/jury/runs/{done.pk}/").content.decode()
    failed_html = lead_client.get(f"/jury/runs/{run_failed.pk}/").content.decode()

    assert 'hx-trigger="every 2s"' not in done_html
    assert squash(fragment(done_html, "run-state")) == "Done 9 votes in 1 min 15 s."
    assert 'hx-trigger="every 2s"' not in failed_html
    assert squash(fragment(failed_html, "run-state")) == (
        "Failed a-judge: BackendError: cannot load model 'x' (0 of 9 votes kept; "
        "Resume queues only the missing ones.)"
    )
    assert "cannot load model &#x27;x&#x27;" in failed_html  # escaped
    assert ">Resume</button>" in failed_html


def test_the_run_page_says_what_the_scope_left_out(lead_client: Client):
    run, _ = make_run()
    JuryRun.objects.filter(pk=run.pk).update(
        scope="unsafe_majority",
        waiting_for_votes={"dialogues": 7, "vote_counts": [1, 2], "labels_required": 3},
    )
    html = lead_client.get(f"/jury/runs/{run.pk}/").content.decode()
    assert "(complete human votes only)" in html
    assert (
        "<span data-waiting>7 left out: still waiting for human votes (1 or 2 of 3)"
        "</span>" in html
    )
