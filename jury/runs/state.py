"""A jury run's state in words: pure functions over what the database holds.

`describe_run` turns a run's status, its vote counts per judge, what each judge's
worker last recorded (`RunJudgeState`) and who listens on each queue
(`jury.presence`) into what the run page says: queued (and whether a worker
consumes each judge's queue), loading the model, running n of m with votes per
minute and the time left, done, failed with the error.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jury.presence import Listener

# Run phases (RunState.phase); a judge's are the first five.
QUEUED = "queued"
LOADING = "loading"
RUNNING = "running"
DONE = "done"
FAILED = "failed"
CANCELLED = "cancelled"


@dataclass(frozen=True)
class Waiting:
    """What the "humans call unsafe" scope found still waiting for human votes:
    dialogues whose votes so far say unsafe (the ones a wider scope adds)."""

    dialogues: int = 0
    vote_counts: tuple[int, ...] = ()
    labels_required: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "dialogues": self.dialogues,
            "vote_counts": list(self.vote_counts),
            "labels_required": self.labels_required,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> "Waiting":
        data = data or {}
        return cls(
            dialogues=int(data.get("dialogues", 0)),
            vote_counts=tuple(int(n) for n in data.get("vote_counts", ())),
            labels_required=int(data.get("labels_required", 0)),
        )

    def counts_text(self) -> str:
        """ "1 or 2 of 3": the human votes these dialogues have, of those required."""
        counts = [str(n) for n in self.vote_counts]
        if len(counts) > 1:
            counts = [", ".join(counts[:-1]) + " or " + counts[-1]]
        return f"{counts[0] if counts else 0} of {self.labels_required}"

    def text(self, *, included: bool) -> str:
        """The sentence the pages show; "" when nothing waits."""
        if not self.dialogues:
            return ""
        why = f"still waiting for human votes ({self.counts_text()})"
        if included:
            return f"{self.dialogues} included although {why}"
        return f"{self.dialogues} left out: {why}"


@dataclass(frozen=True)
class JudgeInput:
    """One judge of a run, as read: its votes and its worker's last record."""

    name: str
    queue: str
    expected: int
    votes: int
    phase: str | None  # the stored JudgePhase; None: no chunk has started
    listener: "Listener | None" = None
    worker: str = ""
    loading_since: datetime | None = None
    running_since: datetime | None = None
    votes_at_start: int = 0
    error: str = ""
    # "re-queued after a worker was lost (attempt 2 of 3)", once a reaper did.
    requeued: str = ""


@dataclass(frozen=True)
class JudgeLine:
    """One judge's line on the run page."""

    name: str
    queue: str
    phase: str
    votes: int
    expected: int
    rate: float | None  # votes per minute
    seconds_left: float | None
    text: str
    worker_text: str
    no_worker: bool


@dataclass(frozen=True)
class RunState:
    phase: str
    headline: str
    detail: str
    judges: tuple[JudgeLine, ...]
    rate: float | None
    seconds_left: float | None
    polling: bool


def duration(seconds: float) -> str:
    """ "40 s", "4 min 10 s", "12 min", "1 h 5 min"."""
    total = max(0, round(seconds))
    if total < 60:
        return f"{total} s"
    minutes, rest = divmod(total, 60)
    if minutes < 10:
        return f"{minutes} min {rest} s" if rest else f"{minutes} min"
    if minutes < 60:
        return f"{minutes + (rest >= 30)} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def about(seconds: float) -> str:
    """A time left, rounded as an estimate deserves: "about 4 min", "under a
    minute", "about 1 h 5 min"."""
    if seconds < 60:
        return "under a minute"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"about {minutes} min"
    return f"about {duration(minutes * 60)}"


def _rate(judge: JudgeInput, now: datetime) -> float | None:
    """Votes per minute since the judge's model was ready in its worker."""
    if judge.phase != RUNNING or judge.running_since is None:
        return None
    new = judge.votes - judge.votes_at_start
    elapsed = (now - judge.running_since).total_seconds()
    return new * 60 / elapsed if new > 0 and elapsed > 0 else None


def _worker_text(judge: JudgeInput, now: datetime) -> str:
    seen = judge.listener
    if seen is None:
        return f"no worker has listened on {judge.queue}"
    ago = duration((now - seen.last_seen).total_seconds())
    if seen.listening:
        return f"{seen.hostname} listening on {judge.queue} (seen {ago} ago)"
    if seen.stopped:
        return (
            f"no worker listening on {judge.queue}: {seen.hostname} stopped {ago} ago"
        )
    return f"no worker listening on {judge.queue}: {seen.hostname} last seen {ago} ago"


def _finished_worker_text(judge: JudgeInput) -> str:
    """Who judged, once a judge is done: whether a worker listens now is moot."""
    return f"judged on {judge.worker}" if judge.worker else "—"


def judge_line(judge: JudgeInput, *, now: datetime) -> JudgeLine:
    rate = _rate(judge, now)
    left = judge.expected - judge.votes
    seconds_left = left * 60 / rate if rate else None
    # The text follows the phase's badge: "running" · "8 of 12 votes · ...".
    counts = f"{judge.votes} of {judge.expected} votes"
    if judge.expected and left <= 0:
        phase, text = DONE, counts
    elif judge.phase == FAILED:
        phase, text = FAILED, judge.error
    elif judge.phase == LOADING:
        since = judge.loading_since or now
        phase = LOADING
        text = f"the model, on {judge.worker}, for " + duration(
            (now - since).total_seconds()
        )
    elif judge.phase == RUNNING:
        phase, text = RUNNING, counts
        if rate is not None and seconds_left is not None:
            text += f" · {rate:.1f} votes/min · {about(seconds_left)} left"
    else:
        phase, text = QUEUED, counts
    if judge.requeued and phase not in (DONE, FAILED):
        text += f" · {judge.requeued}"
    return JudgeLine(
        name=judge.name,
        queue=judge.queue,
        phase=phase,
        votes=judge.votes,
        expected=judge.expected,
        rate=rate,
        seconds_left=seconds_left,
        text=text,
        worker_text=_finished_worker_text(judge)
        if phase == DONE
        else _worker_text(judge, now),
        no_worker=judge.listener is None or not judge.listener.listening,
    )


def describe_run(
    *,
    status: str,
    error: str,
    created_at: datetime,
    finished_at: datetime | None,
    votes: int,
    expected: int,
    judges: Sequence[JudgeInput],
    now: datetime,
) -> RunState:
    """What the run page says about a run (status: a RunStatus value)."""
    lines = tuple(judge_line(j, now=now) for j in judges)
    busy = [line for line in lines if line.phase not in (DONE, FAILED)]
    rates = [line.rate for line in lines if line.rate is not None]
    rate = sum(rates) if rates else None
    lefts = [line.seconds_left for line in busy]
    seconds_left = (
        max(s for s in lefts if s is not None) if lefts and None not in lefts else None
    )
    if status in (DONE, CANCELLED, FAILED):
        took = (finished_at or now) - created_at
        detail = {
            DONE: f"{votes} votes in {duration(took.total_seconds())}.",
            CANCELLED: f"{votes} of {expected} votes kept; Resume queues only "
            "the missing ones.",
            FAILED: f"{error} ({votes} of {expected} votes kept; Resume queues "
            "only the missing ones.)",
        }[status]
        headline = {DONE: "Done", CANCELLED: "Cancelled", FAILED: "Failed"}[status]
        return RunState(status, headline, detail, lines, None, None, False)
    waiting_on = [line.queue for line in busy if line.no_worker]
    no_worker = "no worker listening on " + ", ".join(waiting_on) if waiting_on else ""
    started = [line for line in lines if line.phase in (LOADING, RUNNING)]
    if not votes and not started:
        detail = (
            f"Waiting for a worker: {no_worker}."
            if no_worker
            else "A worker listens on every judge's queue; the first chunk starts soon."
        )
        return RunState(QUEUED, "Queued", detail, lines, None, None, True)
    if not votes and all(line.phase == LOADING for line in started):
        names = ", ".join(line.name for line in started)
        detail = f"{names}: the worker loads the model; the first votes follow."
        return RunState(LOADING, "Loading the model", detail, lines, None, None, True)
    detail = f"{votes} of {expected} votes"
    requeued = [f"{j.name} {j.requeued}" for j in judges if j.requeued]
    if requeued and busy:
        detail += " · " + "; ".join(requeued)
    if rate is not None:
        detail += f" · {rate:.1f} votes/min"
    if not busy:
        detail += " · every vote is in"
    elif seconds_left is not None:
        detail += f" · {about(seconds_left)} left"
    elif no_worker:
        detail += f" · time left unknown: {no_worker}"
    else:
        detail += " · time left: known once every judge has voted"
    polling = votes < expected
    return RunState(
        RUNNING, "Running", detail + ".", lines, rate, seconds_left, polling
    )
