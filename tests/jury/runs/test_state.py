"""A jury run's state in words (jury.runs.state): pure, over plain values."""

from datetime import UTC, datetime, timedelta

import pytest

from jury.presence import Listener
from jury.runs.state import JudgeInput, Waiting, about, describe_run, duration

NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
STARTED = NOW - timedelta(minutes=10)


def listening(host: str = "jury@gpu1", seconds_ago: int = 4) -> Listener:
    return Listener(
        hostname=host,
        last_seen=NOW - timedelta(seconds=seconds_ago),
        listening=True,
        stopped=False,
    )


def judge(name: str, **fields) -> JudgeInput:
    return JudgeInput(
        **{"name": name, "queue": f"jury.{name}", "expected": 10, "votes": 0}
        | {"phase": None}
        | fields
    )


def run(judges, *, status="running", votes=None, expected=None, **fields):
    return describe_run(
        status=status,
        error=fields.pop("error", ""),
        created_at=STARTED,
        finished_at=fields.pop("finished_at", None),
        votes=sum(j.votes for j in judges) if votes is None else votes,
        expected=sum(j.expected for j in judges) if expected is None else expected,
        judges=judges,
        now=NOW,
    )


def test_a_queued_run_names_the_queues_no_worker_listens_on():
    # given two judges: one queue has a worker, the other's worker went away
    gone = Listener(
        hostname="jury@old",
        last_seen=NOW - timedelta(minutes=5),
        listening=False,
        stopped=False,
    )
    judges = [judge("a", listener=listening()), judge("b", listener=gone)]

    # when the run is described before any chunk started
    state = run(judges)

    # then it is queued, waits for a worker on jury.b only, and keeps polling
    assert (state.phase, state.headline, state.polling) == ("queued", "Queued", True)
    assert state.detail == "Waiting for a worker: no worker listening on jury.b."
    assert [(j.phase, j.no_worker, j.worker_text) for j in state.judges] == [
        ("queued", False, "jury@gpu1 listening on jury.a (seen 4 s ago)"),
        (
            "queued",
            True,
            "no worker listening on jury.b: jury@old last seen 5 min ago",
        ),
    ]
    assert (state.rate, state.seconds_left) == (None, None)


def test_a_queued_run_with_every_queue_listened_on_says_it_starts_soon():
    state = run([judge("a", listener=listening())])
    assert state.detail == (
        "A worker listens on every judge's queue; the first chunk starts soon."
    )
    assert run([judge("a")]).judges[0].worker_text == "no worker has listened on jury.a"


def test_a_run_whose_worker_loads_the_model_says_so():
    # given the worker recorded "loading" 14 s ago and nothing else happened
    judges = [
        judge(
            "a",
            phase="loading",
            worker="jury@gpu1",
            loading_since=NOW - timedelta(seconds=14),
            listener=listening(),
        )
    ]

    state = run(judges)

    assert (state.phase, state.headline) == ("loading", "Loading the model")
    assert state.detail == "a: the worker loads the model; the first votes follow."
    assert state.judges[0].text == "the model, on jury@gpu1, for 14 s"
    assert state.polling is True


def test_a_running_run_gives_votes_per_minute_and_the_time_left():
    # given judge a: 12 votes in the 4 minutes since its model was ready (2 of them
    # from an earlier worker), and judge b: 20 of 30 done in 2 minutes
    a = judge(
        "a",
        expected=30,
        votes=12,
        phase="running",
        running_since=NOW - timedelta(minutes=4),
        votes_at_start=2,
        listener=listening(),
    )
    b = judge(
        "b",
        expected=30,
        votes=20,
        phase="running",
        running_since=NOW - timedelta(minutes=2),
        listener=listening(),
    )

    state = run([a, b])

    # then a votes 2.5 a minute (18 left: 7.2 min), b 10 a minute (10 left: 1 min);
    # the run takes as long as its slowest judge
    assert [(j.rate, j.seconds_left) for j in state.judges] == [
        (2.5, pytest.approx(432.0)),
        (10.0, pytest.approx(60.0)),
    ]
    assert (state.phase, state.rate, state.seconds_left) == (
        "running",
        12.5,
        pytest.approx(432.0),
    )
    assert state.detail == "32 of 60 votes · 12.5 votes/min · about 7 min left."
    assert [j.text for j in state.judges] == [
        "12 of 30 votes · 2.5 votes/min · about 7 min left",
        "20 of 30 votes · 10.0 votes/min · about 1 min left",
    ]
    assert state.polling is True


def test_the_time_left_waits_for_every_judge_and_names_a_missing_worker():
    # given judge a runs, judge b is queued with no worker
    a = judge(
        "a",
        votes=4,
        phase="running",
        running_since=NOW - timedelta(minutes=1),
        listener=listening(),
    )
    state = run([a, judge("b")])

    assert state.phase == "running"
    assert state.detail == (
        "4 of 20 votes · 4.0 votes/min · time left unknown: no worker listening "
        "on jury.b."
    )
    assert state.seconds_left is None
    # and with b's worker there but b not started yet, the time left is not guessed
    state = run([a, judge("b", listener=listening())])
    assert state.detail == (
        "4 of 20 votes · 4.0 votes/min · time left: known once every judge has voted."
    )


def test_a_judge_with_all_its_votes_is_done_and_a_failed_one_shows_its_error():
    done = judge("a", votes=10, phase="running", running_since=STARTED)
    failed = judge("b", phase="failed", error="BackendError: cannot load model")
    state = run([done, failed], status="failed", error="b: BackendError: no model")

    assert [(j.phase, j.text) for j in state.judges] == [
        ("done", "10 of 10 votes"),
        ("failed", "BackendError: cannot load model"),
    ]
    assert (state.phase, state.headline, state.polling) == ("failed", "Failed", False)
    assert state.detail == (
        "b: BackendError: no model (10 of 20 votes kept; Resume queues only the "
        "missing ones.)"
    )


def test_finished_runs_stop_polling():
    judges = [judge("a", votes=10, phase="running")]
    done = run(judges, status="done", finished_at=STARTED + timedelta(seconds=250))
    assert (done.phase, done.headline, done.detail, done.polling) == (
        "done",
        "Done",
        "10 votes in 4 min 10 s.",
        False,
    )
    cancelled = run([judge("a", votes=3)], status="cancelled")
    assert (cancelled.headline, cancelled.detail, cancelled.polling) == (
        "Cancelled",
        "3 of 10 votes kept; Resume queues only the missing ones.",
        False,
    )


@pytest.mark.parametrize(
    ("waiting", "included", "text"),
    [
        (
            Waiting(7, (1, 2), 3),
            False,
            "7 left out: still waiting for human votes (1 or 2 of 3)",
        ),
        (
            Waiting(1, (2,), 3),
            False,
            "1 left out: still waiting for human votes (2 of 3)",
        ),
        (
            Waiting(4, (1, 2, 3), 5),
            True,
            "4 included although still waiting for human votes (1, 2 or 3 of 5)",
        ),
        (Waiting(0, (), 3), False, ""),
    ],
)
def test_what_waits_for_human_votes_in_words(waiting, included, text):
    assert waiting.text(included=included) == text
    assert Waiting.from_json(waiting.as_json()) == waiting


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0 s"),
        (59.4, "59 s"),
        (60, "1 min"),
        (250, "4 min 10 s"),
        (725, "12 min"),
        (3600, "1 h"),
        (3900, "1 h 5 min"),
    ],
)
def test_durations_read_as_people_say_them(seconds, text):
    assert duration(seconds) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (12, "under a minute"),
        (89, "about 1 min"),
        (432, "about 7 min"),
        (3900, "about 1 h 5 min"),
    ],
)
def test_a_time_left_is_rounded_as_an_estimate(seconds, text):
    assert about(seconds) == text


def test_a_judge_that_is_done_names_the_worker_that_judged_not_who_listens_now():
    # given a done judge whose worker has stopped since, and one with no worker known
    # (the demo's recorded run)
    stopped = Listener(
        hostname="jury@gpu1",
        last_seen=NOW - timedelta(hours=2),
        listening=False,
        stopped=True,
    )
    judged = judge("a", votes=10, phase="running", worker="jury@gpu1", listener=stopped)
    recorded = judge("b", votes=10)

    # when the run is described
    lines = run([judged, recorded], status="done", finished_at=NOW).judges

    # then each says who judged, and no worker is asked for
    assert [(line.phase, line.worker_text) for line in lines] == [
        ("done", "judged on jury@gpu1"),
        ("done", "—"),
    ]
