"""How far people are: an annotator's own counts, and a batch's for its leads."""

import statistics
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Q
from django.utils import timezone

from accounts.models import User
from accounts.ordering import by_username
from annotation.models import Batch, Dialogue, Flag, Label, Skip, VoteKind


@dataclass(frozen=True)
class BatchCount:
    name: str
    mine: int
    dialogues: int


@dataclass(frozen=True)
class MyProgress:
    today: int
    total: int
    daily_cap: int | None
    batches: list[BatchCount]

    def in_batch(self, name: str) -> int:
        return next((b.mine for b in self.batches if b.name == name), 0)


def start_of_today() -> datetime:
    return timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)


def my_progress(annotator: User) -> MyProgress:
    """Counts of the annotator's own votes: today, in all, per assigned batch."""
    mine = Label.objects.human().filter(annotator=annotator)
    totals = mine.aggregate(
        total=Count("pk"), today=Count("pk", filter=Q(created_at__gte=start_of_today()))
    )
    per_batch = dict(
        mine.values("dialogue__batch__name")
        .annotate(n=Count("pk"))
        .values_list("dialogue__batch__name", "n")
    )
    batches = [
        BatchCount(name=name, mine=per_batch.get(name, 0), dialogues=n)
        # n_dialogues comes from with_counts(), which the type stubs cannot see.
        for name, n in Batch.objects.filter(assignments__annotator=annotator)
        .with_counts()
        .order_by("created_at")
        .values_list("name", "n_dialogues")  # type: ignore[misc]
    ]
    return MyProgress(
        today=totals["today"],
        total=totals["total"],
        daily_cap=annotator.daily_label_cap,
        batches=batches,
    )


@dataclass(frozen=True)
class AnnotatorRow:
    username: str
    labelled: int
    skipped: int
    flagged: int
    median_seconds: float | None
    today: int
    daily_cap: int | None


@dataclass(frozen=True)
class BatchProgress:
    dialogues: int
    complete: int
    votes: int
    votes_needed: int
    annotators: list[AnnotatorRow]

    @property
    def percent(self) -> int:
        return int(100 * self.votes / self.votes_needed) if self.votes_needed else 100


def batch_progress(batch: Batch) -> BatchProgress:
    """A batch's completion and each assigned annotator's work in it (a few queries,
    whatever the number of annotators)."""
    dialogues = Dialogue.objects.for_annotators().filter(batch=batch)
    n_dialogues = dialogues.count()
    votes = Label.objects.filter(kind=VoteKind.HUMAN, dialogue__batch=batch)
    per_dialogue = (
        votes.values("dialogue")
        .annotate(n=Count("pk"))
        .filter(n__gte=batch.labels_required)
    )
    complete = per_dialogue.count()
    n_votes = votes.count()
    needed = n_dialogues * batch.labels_required
    times: dict[int, list[int]] = defaultdict(list)
    today: dict[int, int] = defaultdict(int)
    start = start_of_today()
    for annotator_id, ms, created in votes.values_list(
        "annotator_id", "time_spent_ms", "created_at"
    ):
        if ms is not None:
            times[annotator_id].append(ms)
        if created >= start:
            today[annotator_id] += 1
    labelled = dict(
        votes.values("annotator").annotate(n=Count("pk")).values_list("annotator", "n")
    )
    skipped = dict(
        Skip.objects.filter(dialogue__batch=batch)
        .values("annotator")
        .annotate(n=Count("pk"))
        .values_list("annotator", "n")
    )
    flagged = dict(
        Flag.objects.filter(dialogue__batch=batch)
        .values("annotator")
        .annotate(n=Count("pk"))
        .values_list("annotator", "n")
    )
    people = User.objects.filter(
        Q(assignments__batch=batch) | Q(pk__in=list(labelled))
    ).distinct()
    rows = [
        AnnotatorRow(
            username=u.username,
            labelled=labelled.get(u.pk, 0),
            skipped=skipped.get(u.pk, 0),
            flagged=flagged.get(u.pk, 0),
            median_seconds=(
                round(statistics.median(times[u.pk]) / 1000, 1) if times[u.pk] else None
            ),
            today=today[u.pk],
            daily_cap=u.daily_label_cap,
        )
        for u in by_username(people)
    ]
    return BatchProgress(
        dialogues=n_dialogues,
        complete=complete,
        votes=min(n_votes, needed) if needed else n_votes,
        votes_needed=needed,
        annotators=rows,
    )
