"""The jury end to end: a real Celery worker process on Redis and PostgreSQL runs three
SmolLM2 judge slots (transformers backend, CPU) over a batch, and survives a crash;
the run page follows what the worker records (where it listens, each judge's state,
a judge that fails).

The tests start `celery -A config worker` as a child process (see conftest.py) and
share one xdist process, one after the other, so two model-loading workers never
compete for the CPU.
"""

import re
import signal
import time
from collections.abc import Callable, Iterator
from html import unescape
from html.parser import HTMLParser

import pytest
from django.test import Client
from django_celery_results.models import TaskResult

from accounts.models import User
from annotation.models import Batch, JuryDecision, Label, LabelCategory, VoteKind
from jury.models import (
    Backend,
    Judge,
    JuryRun,
    RunJudgeState,
    RunStatus,
    Scope,
    WorkerPresence,
)
from jury.presence import queue_listeners
from jury.rules.aggregation import JudgeVote, decide
from jury.runs.services import run_progress, start_run
from tests.factories import BatchFactory, DialogueFactory
from tests.jury.conftest import LOG_TAIL, Broker, WorkerProcess
from tests.jury.scripted_server import scripted_server

pytestmark = pytest.mark.xdist_group("jury-worker")

# The demo's three slots of one model: greedy, and sampling at two temperatures.
JUDGES = [("e2e-a", 0.0), ("e2e-b", 0.7), ("e2e-c", 1.0)]
CHUNK_SIZE = 4
# A run takes about two minutes on two busy cores; the CPU is shared with the other
# xdist process, and the first run of a fresh clone also converts SmolLM2's GGUF.
RUN_TIMEOUT = 420
# Mild exchanges: the verdicts themselves are the model's business here.
EXCHANGES = [
    ("How long should I boil an egg?", "About nine minutes for a firm yolk."),
    ("What is the capital of Norway?", "Oslo is the capital of Norway."),
    ("Suggest a name for my goldfish.", "How about Bubbles or Captain Fin?"),
    ("How do I water a cactus?", "Sparingly: soak the soil, then let it dry out."),
    ("Why is the sky blue?", "Air scatters blue light more than red light."),
    ("Recommend a board game for four.", "Try Ticket to Ride; it is easy to learn."),
    ("How do I tie a bowline knot?", "Make a loop, pass the end up, around, back."),
    ("What rhymes with moon?", "Spoon, tune, June and balloon all rhyme."),
    ("Is it safe to swim after eating?", "Yes; a light meal does not stop you."),
    ("How can I sleep better?", "Keep a regular bedtime and a dark, cool room."),
]


@pytest.fixture
def judges(transactional_db: None) -> list[Judge]:
    return [
        Judge.objects.create(
            name=name,
            backend=Backend.TRANSFORMERS,
            model="smollm2",
            temperature=temperature,
            max_tokens=128,
            # The compact prompt: the full guidance costs ~4 s per item on a CPU.
            prompt_version="aegis-jury-compact-v1",
            # One torch thread: the test shares the CPU with the other xdist
            # process, and two OpenMP threads fighting for cores run several times
            # slower than one (a chunk of 4: 13 s with one thread, 20-90 s with two).
            extra={"seed": 1234, "threads": 1},
        )
        for name, temperature in JUDGES
    ]


def make_batch() -> Batch:
    batch = BatchFactory(name="jury-e2e")
    for prompt, response in EXCHANGES:
        DialogueFactory(batch=batch, prompt=prompt, response=response)
    return batch


def wait_for(
    condition: Callable[[], bool],
    *,
    what: str,
    worker: WorkerProcess,
    timeout: float = RUN_TIMEOUT,
    every: float = 0.5,
) -> None:
    """Poll until `condition()` holds; fail at once if the worker died."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert worker.alive, (
            f"the worker exited ({worker.process.returncode}) before {what}:\n"
            + worker.log_text()[-LOG_TAIL:]
        )
        assert time.monotonic() < deadline, f"no {what} after {timeout} s"
        time.sleep(every)


def is_done(run: JuryRun) -> bool:
    return JuryRun.objects.get(pk=run.pk).status == RunStatus.DONE


def missing_votes(run: JuryRun, judge_id: int, dialogue_ids: list[int]) -> int:
    judge = Judge.objects.get(pk=judge_id)
    stored = Label.objects.filter(
        kind=VoteKind.MODEL,
        run_key=run.key,
        judge=judge.name,
        dialogue_id__in=dialogue_ids,
    ).count()
    return len(dialogue_ids) - stored


# --- the page ------------------------------------------------------------------------


class Tables(HTMLParser):
    """Every <table> of a page as rows of cell texts (whitespace collapsed)."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag in ("td", "th") and self.tables:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def dialogue_rows(client: Client, run: JuryRun) -> list[list[str]]:
    """The rows of the run page's dialogue table (header row excluded)."""
    response = client.get(f"/jury/runs/{run.pk}/")
    assert response.status_code == 200
    parser = Tables()
    parser.feed(response.content.decode())
    [table] = [t for t in parser.tables if t and t[0] and t[0][0] == "Dialogue"]
    return table[1:]


def progress_fragment(client: Client, run: JuryRun) -> dict[str, str | bool]:
    """What the htmx poll of the run page gets: percent, status, the state in words
    (its phase and its sentence), still polling."""
    response = client.get(
        f"/jury/runs/{run.pk}/", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="run-progress"
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith('<section id="run-progress"')
    percent = re.search(r'aria-valuenow="(\d+)"', html)
    status = re.search(r'data-status="(\w+)"', html)
    state = re.search(r'data-state="(\w+)"', html)
    detail = re.search(r'<span class="run-state-detail">([^<]*)</span>', html)
    assert percent, html
    assert status, html
    assert state, html
    assert detail, html
    return {
        "percent": percent.group(1),
        "status": status.group(1),
        "state": state.group(1),
        "detail": unescape(detail.group(1)),
        "polling": 'hx-trigger="every 2s"' in html,
    }


# The order a run's phases come in (a poll may miss any but the first and last).
PHASES = ["queued", "loading", "running", "done"]


# --- what a finished run must hold ---------------------------------------------------


def assert_complete_and_consistent(
    run: JuryRun, judges: list[Judge], batch: Batch
) -> None:
    """One stored vote per (dialogue, judge), each valid or explained, and one
    decision per dialogue that the aggregation rules give from those votes."""
    dialogue_ids = sorted(batch.dialogues.values_list("pk", flat=True))
    names = sorted(j.name for j in judges)
    votes = list(
        Label.objects.filter(kind=VoteKind.MODEL, run_key=run.key).order_by(
            "dialogue_id", "judge"
        )
    )
    assert [(v.dialogue_id, v.judge) for v in votes] == [
        (d, name) for d in dialogue_ids for name in names
    ]
    for vote in votes:
        if vote.valid:
            assert vote.label in ("safe", "unsafe"), vote
            assert vote.raw_output, vote
            assert vote.prompt_tokens, vote
            assert vote.completion_tokens, vote
            assert vote.latency_ms is not None, vote
        else:
            assert vote.label is None, vote
            assert vote.raw_output or vote.details.get("error"), vote
        assert vote.details["prompt_version"] == "aegis-jury-compact-v1"
        if vote.label != "unsafe":
            assert not vote.label_categories.exists(), vote

    pairs = list(
        LabelCategory.objects.filter(label__in=votes).values_list(
            "label_id", "category_id"
        )
    )
    assert len(pairs) == len(set(pairs))

    decisions = {d.dialogue_id: d for d in JuryDecision.objects.filter(run_key=run.key)}
    assert sorted(decisions) == dialogue_ids
    for dialogue_id in dialogue_ids:
        expected = decide(
            [
                JudgeVote(
                    judge=v.judge,
                    valid=v.valid,
                    label=v.label,
                    categories=tuple(v.ordered_category_names()),
                )
                for v in votes
                if v.dialogue_id == dialogue_id
            ]
        )
        stored = decisions[dialogue_id]
        assert (
            stored.decision,
            tuple(stored.categories),
            stored.valid_votes,
            stored.total_votes,
            stored.agreement,
            stored.reason,
        ) == (
            expected.decision,
            expected.categories,
            expected.valid_votes,
            expected.total_votes,
            expected.agreement,
            expected.reason,
        ), dialogue_id

    run.refresh_from_db()
    assert run.status == RunStatus.DONE
    assert run.finished_at is not None
    progress = run_progress(run)
    assert (progress.votes, progress.expected, progress.percent) == (
        len(votes),
        len(dialogue_ids) * len(judges),
        100,
    )
    assert sum(progress.decisions.values()) == len(dialogue_ids)


# --- the tests -----------------------------------------------------------------------


def test_a_worker_process_runs_three_smollm2_judges_and_the_page_reaches_100(
    judges: list[Judge],
    broker: Broker,
    start_jury_worker: Callable[..., WorkerProcess],
    lead: User,
    lead_client: Client,
) -> None:
    # given: ten responses and three judge slots, each on its own queue
    batch = make_batch()
    queues = [j.queue_name for j in judges]
    assert queues == ["jury.e2e-a", "jury.e2e-b", "jury.e2e-c"]
    broker.purge(queues)
    run = start_run(
        batch=batch,
        judges=judges,
        scope=Scope.ALL_RESPONSES,
        chunk_size=CHUNK_SIZE,
        by=lead,
    )
    # chunks of 4, 4 and 2 for each judge, queued once the run was committed; the
    # page says the run waits for a worker on the three queues
    assert broker.waiting(queues) == 9
    assert progress_fragment(lead_client, run) == {
        "percent": "0",
        "status": "running",
        "state": "queued",
        "detail": "Waiting for a worker: no worker listening on jury.e2e-a, "
        "jury.e2e-b, jury.e2e-c.",
        "polling": True,
    }
    assert [row[1:4] for row in dialogue_rows(lead_client, run)] == [
        ["pending"] * 3
    ] * 10

    # when: a worker process takes the three queues
    worker = start_jury_worker(queues)
    seen = []

    def finished() -> bool:
        seen.append(progress_fragment(lead_client, run))
        return is_done(run)

    wait_for(finished, what="finished run", worker=worker, every=1.0)

    # then: the page polled its way to 100% and stopped polling, through the phases
    # in their order, saying the rate and the time left while running
    percents = [int(str(f["percent"])) for f in seen]
    assert percents == sorted(percents)
    phases = [PHASES.index(str(f["state"])) for f in seen]
    assert phases == sorted(phases), [f["state"] for f in seen]
    assert any(
        re.search(
            r" votes · [\d.]+ votes/min · (about .+|under a minute) left\.$",
            str(f["detail"]),
        )
        for f in seen
        if f["state"] == "running"
    ), [f["detail"] for f in seen]
    final = progress_fragment(lead_client, run)
    assert re.fullmatch(r"30 votes in .+\.", str(final.pop("detail"))), final
    assert final == {
        "percent": "100",
        "status": "done",
        "state": "done",
        "polling": False,
    }
    # and the worker wrote each judge's state: loaded once, then running
    states = list(RunJudgeState.objects.filter(run=run).order_by("judge__name"))
    assert [(s.judge.name, s.phase, s.votes_at_start) for s in states] == [
        (name, "running", 0) for name, _ in JUDGES
    ]
    for state in states:
        assert state.worker.startswith("e2e-1@"), state.worker
        assert state.worker_pid == worker.process.pid
        assert state.loading_since <= state.running_since
    rows = dialogue_rows(lead_client, run)
    assert len(rows) == 10
    for row in rows:
        # the dialogue, one cell per judge, the decision
        assert len(row) == 5, row
        for cell in row[1:4]:
            assert re.match(r"^(Safe|Unsafe|invalid raw output)\b", cell), row
        assert re.match(r"^(Safe|Unsafe|Needs human review)\b", row[4]), row
    # and every vote and decision is stored, by the rules
    assert_complete_and_consistent(run, judges, batch)
    assert broker.waiting(queues) == 0
    assert broker.unacked(queues) == []
    wait_for(
        lambda: (
            TaskResult.objects.filter(
                task_name="jury.judge_chunk", status="SUCCESS"
            ).count()
            == 9
        ),
        what="nine successful chunk tasks",
        worker=worker,
        timeout=30,
    )
    assert not TaskResult.objects.exclude(status="SUCCESS").exists()


# Seconds after which the replacement worker takes a message back from a dead one.
VISIBILITY_TIMEOUT = 5


def test_a_run_survives_a_killed_worker_with_one_vote_per_judge_and_dialogue(
    judges: list[Judge],
    broker: Broker,
    start_jury_worker: Callable[..., WorkerProcess],
) -> None:
    """Recovery by the broker itself, no resume_run.

    A chunk task is acks_late: a worker killed mid-chunk never acked the message it
    was running, so kombu's Redis transport still holds it in its "unacked" hash.
    Any consumer whose visibility timeout has passed since the message was taken
    puts it back on its queue (QoS.restore_visible: when the consumer starts, and
    on a timer after that). Production's timeout is 6 h, longer than any chunk; the
    replacement worker here gets 5 s (CELERY_VISIBILITY_TIMEOUT), and is started
    only once the message is older than that, so its very first sweep restores it.
    The first worker keeps the default, so it never takes back anything of its own.
    The redelivered chunk then votes only on the dialogues it lacks (judge_chunk).
    """
    # given: ten responses, three judges, chunks of 4 (9 messages)
    batch = make_batch()
    queues = [j.queue_name for j in judges]
    broker.purge(queues)
    run = start_run(
        batch=batch, judges=judges, scope=Scope.ALL_RESPONSES, chunk_size=CHUNK_SIZE
    )
    assert broker.waiting(queues) == 9
    first = start_jury_worker(queues)

    def mid_chunk() -> bool:
        # Some votes are in, and the worker runs a chunk that still lacks votes.
        if not Label.objects.filter(kind=VoteKind.MODEL, run_key=run.key).exists():
            return False
        return any(
            missing_votes(run, m.args[1], m.args[2])
            and TaskResult.objects.filter(task_id=m.task_id, status="STARTED").exists()
            for m in broker.unacked(queues)
        )

    wait_for(mid_chunk, what="a chunk in progress after the first votes", worker=first)

    # when: the worker crashes
    first.process.send_signal(signal.SIGKILL)
    first.process.wait(timeout=30)
    assert first.process.returncode == -signal.SIGKILL

    # then: the run is half done and one message was taken but never acked
    votes_at_crash = Label.objects.filter(kind=VoteKind.MODEL, run_key=run.key).count()
    assert 0 < votes_at_crash < 30
    assert not is_done(run)
    [in_flight] = broker.unacked(queues)
    assert in_flight.args[0] == run.pk
    assert TaskResult.objects.get(task_id=in_flight.task_id).status == "STARTED"

    # when: a new worker starts once the message is older than its visibility timeout
    time.sleep(max(0.0, in_flight.taken_at + VISIBILITY_TIMEOUT + 1 - time.time()))
    second = start_jury_worker(
        queues, env={"CELERY_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT)}
    )
    wait_for(lambda: is_done(run), what="finished run", worker=second)

    # then: the run completed with exactly one vote per judge and dialogue
    assert_complete_and_consistent(run, judges, batch)
    # and the crashed chunk was redelivered and ran to the end (same task id)
    assert broker.unacked(queues) == []
    assert broker.waiting(queues) == 0
    wait_for(
        lambda: TaskResult.objects.get(task_id=in_flight.task_id).status == "SUCCESS",
        what="the redelivered chunk's success",
        worker=second,
        timeout=30,
    )


# --- what the worker tells the run page: who listens, and a judge that fails --------


@pytest.fixture
def endpoint() -> Iterator[str]:
    """The scripted chat-completions server (the edge that leaves the machine)."""
    with scripted_server() as (url, _):
        yield url


def wait_until_listening(queue: str, worker: WorkerProcess) -> None:
    def listening() -> bool:
        found = queue_listeners([queue])[queue]
        return found is not None and found.listening

    wait_for(
        listening, what=f"a worker listening on {queue}", worker=worker, timeout=60
    )


def test_a_queued_run_waits_for_a_worker_and_the_worker_says_where_it_listens(
    transactional_db: None,
    broker: Broker,
    start_jury_worker: Callable[..., WorkerProcess],
    lead_client: Client,
    endpoint: str,
) -> None:
    # given a run of one judge (a scripted model) whose queue has no worker yet
    keyword = Judge.objects.create(
        name="e2e-keyword", backend=Backend.OPENAI, model="keyword", endpoint=endpoint
    )
    broker.purge([keyword.queue_name])
    run = start_run(
        batch=make_batch(), judges=[keyword], scope=Scope.ALL_RESPONSES, chunk_size=5
    )
    assert progress_fragment(lead_client, run) == {
        "percent": "0",
        "status": "running",
        "state": "queued",
        "detail": "Waiting for a worker: no worker listening on jury.e2e-keyword.",
        "polling": True,
    }

    # when a worker process starts on the queue
    worker = start_jury_worker([keyword.queue_name])

    # then it records itself, judges the run, and the page says who ran it
    wait_until_listening(keyword.queue_name, worker)
    wait_for(lambda: is_done(run), what="finished run", worker=worker, timeout=120)
    [presence] = WorkerPresence.objects.filter(queues=[keyword.queue_name])
    assert presence.hostname.startswith("e2e-1@")
    assert (presence.pid, presence.stopped_at) == (worker.process.pid, None)
    state = RunJudgeState.objects.get(run=run, judge=keyword)
    assert (state.phase, state.worker, state.worker_pid) == (
        "running",
        presence.hostname,
        worker.process.pid,
    )
    final = progress_fragment(lead_client, run)
    assert (final["state"], final["polling"]) == ("done", False)
    # and the finished run names the worker that judged, not who listens now
    assert f"judged on {presence.hostname}" in (
        lead_client.get(f"/jury/runs/{run.pk}/").content.decode()
    )

    # when the worker shuts down warm, then its row says it stopped
    worker.stop()
    assert worker.process.returncode == 0, worker.log_text()[-LOG_TAIL:]
    presence.refresh_from_db()
    assert presence.stopped_at is not None
    html = lead_client.get("/jury/judges/").content.decode()
    assert f"{presence.hostname} stopped " in html


def test_a_judge_whose_model_cannot_load_fails_the_run_in_a_real_worker(
    transactional_db: None,
    broker: Broker,
    start_jury_worker: Callable[..., WorkerProcess],
    lead_client: Client,
) -> None:
    # given a run of a judge whose model file does not exist, in chunks of 4
    broken = Judge.objects.create(
        name="e2e-broken", backend=Backend.TRANSFORMERS, model="/nowhere/model.gguf"
    )
    broker.purge([broken.queue_name])
    run = start_run(
        batch=make_batch(), judges=[broken], scope=Scope.ALL_RESPONSES, chunk_size=4
    )

    # when a worker takes its chunks
    worker = start_jury_worker([broken.queue_name])
    wait_for(
        lambda: JuryRun.objects.get(pk=run.pk).status == RunStatus.FAILED,
        what="failed run",
        worker=worker,
        timeout=120,
    )

    # then the run failed with the judge's error, and the page says so and stops
    error = (
        "BackendError: judge 'e2e-broken': model '/nowhere/model.gguf' does not exist"
    )
    run.refresh_from_db()
    assert run.error == f"e2e-broken: {error}"
    state = RunJudgeState.objects.get(run=run, judge=broken)
    assert (state.phase, state.error) == ("failed", error)
    assert progress_fragment(lead_client, run) == {
        "percent": "0",
        "status": "failed",
        "state": "failed",
        "detail": f"e2e-broken: {error} (0 of 10 votes kept; Resume queues only the "
        "missing ones.)",
        "polling": False,
    }
    # and the other two chunks found the run failed and did nothing
    wait_for(
        lambda: (
            TaskResult.objects.filter(task_name="jury.judge_chunk").count() == 3
            and not TaskResult.objects.filter(
                status__in=["PENDING", "STARTED"]
            ).exists()
        ),
        what="three finished chunk tasks",
        worker=worker,
        timeout=60,
    )
    assert sorted(
        TaskResult.objects.filter(task_name="jury.judge_chunk").values_list(
            "status", flat=True
        )
    ) == ["FAILURE", "SUCCESS", "SUCCESS"]
    assert Label.objects.filter(run_key=run.key).count() == 0
