"""How fast a batch's agreement report is, beside the reference packages.

Run from the repository root against PostgreSQL:

    .venv/bin/python bench/agreement.py [--dialogues 36000] [--repeat 5]
        [--resamples 1000] [--profile]

BENCH_DATABASE_URL names the database (postgres://postgres@127.0.0.1:5432/
aegis_bench_agreement when unset). It is dropped and created again at the start,
migrated, and dropped at the end, so the script reads no DATABASE_URL and refuses a
name without "bench" in it.

One batch holds --dialogues dialogues with a response each, 3 human votes per
dialogue (three annotators who each follow a hidden true label 80% of the time,
with categories on unsafe and needs-caution votes) and 3 jury votes (three judges,
85%), plus the jury's decisions; about 8% of the human votes took under 3 s.

Timed, each --repeat times, median reported:

- reference: the point statistics the report holds, computed by calling the
  reference packages directly on numpy arrays built beforehand from the same votes:
  statsmodels' Fleiss kappa (after `aggregate_raters`) and `krippendorff.alpha`
  (nominal) for the 3-way label, the binary label, every category (chosen or not),
  the jury's judges and one week of votes; scikit-learn's `cohen_kappa_score` for
  every pair of annotators, every pair of judges, and each annotator against the
  others' majority and against the jury.
- report (compute): `annotation.agreement.services.build_report` minus the reading, i.e. the
  whole report including every 95% bootstrap interval (--resamples) from votes
  already in memory;
- report (full): `build_report(batch)` end to end: the queries that read the
  batch's votes, categories, jury votes and decisions, and the computation.

The issue's budget: the full report within 1.5 times the reference time, and under
5 seconds.
"""

import argparse
import cProfile
import os
import pstats
import statistics
import time
from typing import Any

import numpy as np
from bench_db import configure_django, drop_database

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/aegis_bench_agreement"
BATCH = "bench-agreement"
ANNOTATORS = ("bench-ann-a", "bench-ann-b", "bench-ann-c")
JUDGES = ("bench-judge-a", "bench-judge-b", "bench-judge-c")
LABELS = ("safe", "needs_caution", "unsafe")
RUN_KEY = "bench-run"
RATIO_BUDGET = 1.5
SECONDS_BUDGET = 5.0


# --- data --------------------------------------------------------------------------


class Data:
    """The generated votes, as the reference sees them: items x raters arrays.

    With more than three annotators, each dialogue's three votes come from three of
    them drawn at random (`self.who`: items x 3 annotator indexes), as the queue
    hands dialogues out; with three, column r is annotator r.
    """

    def __init__(self, n: int, seed: int, categories: int, annotators: int = 3) -> None:
        rng = np.random.default_rng(seed)
        self.n = n
        self.who = (
            np.tile(np.arange(3), (n, 1))
            if annotators == 3
            else rng.random((n, annotators)).argsort(axis=1)[:, :3]
        )
        truth = rng.choice(3, size=n, p=[0.6, 0.1, 0.3])
        follow = rng.random((n, 3)) < 0.8
        self.human = np.where(follow, truth[:, None], rng.integers(0, 3, (n, 3)))
        # Each dialogue's true category; a voter marks it (and sometimes a second
        # one) on unsafe and needs-caution votes.
        true_category = rng.integers(0, categories, n)
        self.chosen = np.zeros((n, 3, categories), dtype=bool)
        marks = self.human != 0
        first = np.where(
            rng.random((n, 3)) < 0.85,
            true_category[:, None],
            rng.integers(0, categories, (n, 3)),
        )
        rows, cols = np.nonzero(marks)
        self.chosen[rows, cols, first[rows, cols]] = True
        second = marks & (rng.random((n, 3)) < 0.2)
        rows, cols = np.nonzero(second)
        self.chosen[rows, cols, rng.integers(0, categories, rows.size)] = True
        self.time_ms = np.where(
            rng.random((n, 3)) < 0.08,
            rng.integers(500, 3000, (n, 3)),
            rng.integers(5000, 90000, (n, 3)),
        )
        binary_truth = (truth != 0).astype(np.int64)
        follow = rng.random((n, 3)) < 0.85
        self.jury = np.where(follow, binary_truth[:, None], 1 - binary_truth[:, None])
        self.decision = (self.jury.sum(axis=1) >= 2).astype(np.int64)


def fill(data: Data, annotators: tuple[str, ...] = ANNOTATORS, weeks: int = 1) -> Any:
    """The batch in the database: dialogues, votes, categories, jury votes, decisions;
    the votes spread over `weeks` ISO weeks (in the order of the dialogues)."""
    from datetime import timedelta

    from django.db import transaction
    from django.utils import timezone

    from accounts.models import User
    from annotation.models import (
        Batch,
        Dialogue,
        JuryDecision,
        Label,
        LabelCategory,
        VoteKind,
    )
    from taxonomy.models import Taxonomy

    taxonomy = Taxonomy.objects.filter(published_at__isnull=False).order_by("-pk")[0]
    categories = list(
        taxonomy.categories.filter(retired=False, group="core").order_by("order")
    )
    people = [
        User.objects.create_user(username=name, password=None, role="annotator")
        for name in annotators
    ]
    with transaction.atomic():
        batch = Batch.objects.create(name=BATCH, taxonomy=taxonomy, labels_required=3)
        dialogues = Dialogue.objects.bulk_create(
            [
                Dialogue(
                    batch=batch,
                    external_id=f"d{i}",
                    turns=[
                        {"role": "user", "content": f"prompt {i}"},
                        {"role": "assistant", "content": f"response {i}"},
                    ],
                    prompt=f"prompt {i}",
                    response=f"response {i}",
                    content_hash=f"{i:064d}",
                    votes=3,
                    claimed=3,
                )
                for i in range(data.n)
            ],
            batch_size=5000,
        )
        ids = [d.pk for d in dialogues]
        humans = Label.objects.bulk_create(
            [
                Label(
                    dialogue_id=ids[i],
                    kind=VoteKind.HUMAN,
                    annotator=people[data.who[i, r]],
                    label=LABELS[data.human[i, r]],
                    time_spent_ms=int(data.time_ms[i, r]),
                )
                for i in range(data.n)
                for r in range(3)
            ],
            batch_size=5000,
        )
        links = []
        for position, label in enumerate(humans):
            i, r = divmod(position, 3)
            chosen = np.nonzero(data.chosen[i, r, : len(categories)])[0]
            for order, c in enumerate(chosen):
                links.append(
                    LabelCategory(
                        label=label, category=categories[int(c)], position=order
                    )
                )
        LabelCategory.objects.bulk_create(links, batch_size=5000)
        Label.objects.bulk_create(
            [
                Label(
                    dialogue_id=ids[i],
                    kind=VoteKind.MODEL,
                    judge=JUDGES[j],
                    run_key=RUN_KEY,
                    label=("safe", "unsafe")[data.jury[i, j]],
                    raw_output="{}",
                )
                for i in range(data.n)
                for j in range(3)
            ],
            batch_size=5000,
        )
        JuryDecision.objects.bulk_create(
            [
                JuryDecision(
                    dialogue_id=ids[i],
                    run_key=RUN_KEY,
                    decision=("safe", "unsafe")[data.decision[i]],
                    valid_votes=3,
                    total_votes=3,
                )
                for i in range(data.n)
            ],
            batch_size=5000,
        )
        # The last week first: each dialogue's votes in its own week, backwards.
        bounds = np.linspace(0, data.n, weeks + 1).astype(int)
        for week in range(weeks - 1):
            Label.objects.filter(
                dialogue_id__in=ids[bounds[week] : bounds[week + 1]]
            ).update(created_at=timezone.now() - timedelta(weeks=weeks - 1 - week))
    return batch, len(categories)


# --- the reference -------------------------------------------------------------------


def reference(data: Data, n_categories: int) -> None:
    """The point statistics of the report, from the reference packages."""
    import krippendorff
    from sklearn.metrics import cohen_kappa_score
    from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa

    def both(matrix: np.ndarray) -> None:
        # matrix: items x raters of codes
        table, _ = aggregate_raters(matrix)
        fleiss_kappa(table)
        krippendorff.alpha(
            reliability_data=matrix.T.astype(float), level_of_measurement="nominal"
        )

    def pairs(matrix: np.ndarray) -> None:
        for a in range(matrix.shape[1]):
            for b in range(a + 1, matrix.shape[1]):
                cohen_kappa_score(matrix[:, a], matrix[:, b])

    both(data.human)
    both((data.human != 0).astype(np.int64))  # binary, permissive
    for c in range(n_categories):
        both(data.chosen[:, :, c].astype(np.int64))
    both(data.jury)
    both(data.human)  # the one week the votes fall in
    pairs(data.human)
    pairs(data.jury)
    for r in range(3):
        others = np.delete(data.human, r, axis=1)
        majority = np.where(others[:, 0] == others[:, 1], others[:, 0], -1)
        keep = majority >= 0
        cohen_kappa_score(data.human[keep, r], majority[keep])
        cohen_kappa_score((data.human[:, r] != 0).astype(np.int64), data.decision)


# --- main ------------------------------------------------------------------------


def timed(fn: Any, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def print_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    """Columns padded to their widest cell, the first left-aligned."""
    widths = [max(len(r[i]) for r in [*rows, header]) for i in range(len(header))]

    def line(cells: tuple[str, ...]) -> str:
        return " | ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    print(line(header))
    print("-+-".join("-" * w for w in widths))
    for row in rows:
        print(line(row))


# --- the page ------------------------------------------------------------------------

CHART_FUNCTIONS = (
    "kappa_heatmap",
    "alpha_bars",
    "label_distribution",
    "time_boxplots",
    "over_time",
    "jury_confusion",
)
# DEBUG is off, so the page's {% static %} would want collectstatic's manifest.
PLAIN_STATIC = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}


def page_bench(args: argparse.Namespace) -> None:
    """--page: GET /batches/<name>/agreement/ through Django's test client for
    demo-reviewed (seed_demo) and a synthetic batch, each report computed and cached
    first, as a lead sees the page once a report is current."""
    import io
    import warnings

    from django.core.management import call_command
    from django.test import Client, override_settings

    from accounts.models import User
    from annotation.agreement import charts
    from annotation.agreement import services as agreement
    from annotation.models import Batch
    from taxonomy.models import Taxonomy

    # WhiteNoise looks for collectstatic's folder, which a benchmark does not need.
    warnings.filterwarnings("ignore", message="No directory at")
    started = time.perf_counter()
    call_command("seed_demo", stdout=io.StringIO())
    taxonomy = Taxonomy.objects.filter(published_at__isnull=False).order_by("-pk")[0]
    n_categories = taxonomy.categories.filter(retired=False, group="core").count()
    people = tuple(f"bench-annotator-{i:02d}" for i in range(1, args.annotators + 1))
    data = Data(args.dialogues, args.seed, n_categories, annotators=args.annotators)
    big, _ = fill(data, people, args.weeks)
    lead = User.objects.create_user(username="bench-lead", password=None, role="lead")
    client = Client(HTTP_HOST="localhost")
    client.force_login(lead)
    print(
        f"demo-reviewed, and {args.dialogues} dialogues with 3 of {args.annotators} "
        f"annotators' votes each over {args.weeks} week(s) and 3 judges; written in "
        f"{time.perf_counter() - started:.1f} s; {os.cpu_count()} CPUs; "
        f"median of {args.repeat} run(s)"
    )
    for batch in (Batch.objects.get(name="demo-reviewed"), big):
        report = agreement.compute(batch).data
        url = f"/batches/{batch.name}/agreement/"
        with override_settings(STORAGES=PLAIN_STATIC):
            bare, page, bare_times, page_times = _time_page(client, url, args.repeat)
        ref = statistics.median(bare_times)
        rows = [
            ("page without charts (reference)", ref, len(bare)),
            ("page with its six charts", statistics.median(page_times), len(page)),
        ]
        for name in CHART_FUNCTIONS:
            draw = getattr(charts, name)
            times = timed(lambda d=draw, r=report: d(r), args.repeat)
            rows.append(
                (f"  {name}", statistics.median(times), len(str(draw(report)).encode()))
            )
        print()
        print(
            f"{batch.name}: {report['n_votes']} human votes, "
            f"{len(report['annotators'])} annotators, "
            f"{len(report['over_time'])} week(s); "
            f"<script> tags on the page: {page.count(b'<script')}"
        )
        print_table(
            ("what", "median ms", "ratio", "bytes"),
            [
                (what, f"{t * 1000:.1f}", f"{t / ref:.2f}", f"{size:,}")
                for what, t, size in rows
            ],
        )


def _time_page(
    client: Any, url: str, repeat: int
) -> tuple[bytes, bytes, list[float], list[float]]:
    """The page without its charts (`charts.dashboard` giving none) and with them,
    interleaved so that other work on the machine falls on both alike."""
    from annotation.agreement import charts

    original = charts.dashboard

    def get(with_charts: bool) -> bytes:
        charts.dashboard = original if with_charts else (lambda _report: [])
        try:
            response = client.get(url)
        finally:
            charts.dashboard = original
        assert response.status_code == 200, response.status_code
        return bytes(response.content)

    bare, page = get(False), get(True)  # warm-up, and what is measured in bytes
    bare_times: list[float] = []
    page_times: list[float] = []
    for _ in range(repeat):
        bare_times += timed(lambda: get(False), 1)
        page_times += timed(lambda: get(True), 1)
    return bare, page, bare_times, page_times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dialogues", type=int, default=36_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=20241127)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument(
        "--queries", action="store_true", help="print each query of one report, timed"
    )
    parser.add_argument(
        "--page",
        action="store_true",
        help="time the agreement page (demo-reviewed and the synthetic batch) instead",
    )
    parser.add_argument("--annotators", type=int, help="3, or 12 with --page")
    parser.add_argument("--weeks", type=int, help="1, or 8 with --page")
    args = parser.parse_args()
    args.annotators = args.annotators or (12 if args.page else 3)
    args.weeks = args.weeks or (8 if args.page else 1)
    url = configure_django(DEFAULT_DATABASE_URL)
    # The tasks seed_demo sends (final labels) stay in this process, out of any
    # broker a worker reads; the page needs none of them.
    os.environ["CELERY_BROKER_URL"] = "memory://"
    drop_database(url, create=True)
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from annotation.agreement import services as agreement

    try:
        call_command("migrate", interactive=False, verbosity=0)
        if args.page:
            page_bench(args)
            return
        started = time.perf_counter()
        from taxonomy.models import Taxonomy

        taxonomy = Taxonomy.objects.filter(published_at__isnull=False).order_by("-pk")[
            0
        ]
        n_categories = taxonomy.categories.filter(retired=False, group="core").count()
        data = Data(args.dialogues, args.seed, n_categories, args.annotators)
        people = (
            ANNOTATORS
            if args.annotators == 3
            else tuple(
                f"bench-annotator-{i:02d}" for i in range(1, args.annotators + 1)
            )
        )
        batch, _ = fill(data, people, args.weeks)
        print(
            f"{args.dialogues} dialogues, {3 * args.dialogues} human and "
            f"{3 * args.dialogues} jury votes, {n_categories} categories in use; "
            f"written in {time.perf_counter() - started:.1f} s; {os.cpu_count()} CPUs, "
            f"{args.resamples} bootstrap resamples"
        )

        # What build_report reads, read once, so "compute" times only the rest.
        readers = (
            "read_human_votes",
            "read_categories",
            "read_jury_votes",
            "read_jury_decisions",
            "read_adjudications",
        )
        original = {name: getattr(agreement, name) for name in readers}
        cached = {name: fn(batch) for name, fn in original.items()}

        def compute_only() -> None:
            for name in readers:
                setattr(agreement, name, lambda _batch, _v=cached[name]: _v)
            try:
                agreement.build_report(batch, n_resamples=args.resamples)
            finally:
                for name, fn in original.items():
                    setattr(agreement, name, fn)

        def full() -> None:
            agreement.build_report(batch, n_resamples=args.resamples)

        # Warm-up: imports, the taxonomy, first allocations.
        full()
        reference(data, n_categories)
        rows = []
        results: dict[str, list[float]] = {"reference": [], "compute": [], "full": []}
        for _ in range(args.repeat):
            # Interleaved, so other work on the machine falls on all three alike.
            results["reference"] += timed(lambda: reference(data, n_categories), 1)
            results["compute"] += timed(compute_only, 1)
            results["full"] += timed(full, 1)
        ref = statistics.median(results["reference"])
        for key, what in (
            ("reference", "reference packages, point statistics (reference)"),
            ("compute", "report from votes in memory, with intervals"),
            ("full", "report end to end (queries + compute)"),
        ):
            median = statistics.median(results[key])
            rows.append(
                (what, str(args.dialogues), f"{median:.3f}", f"{median / ref:.2f}")
            )
        print()
        print(f"median of {args.repeat} repeat(s)")
        print_table(("what", "dialogues", "median s", "ratio"), rows)
        full_median = statistics.median(results["full"])
        ratio = full_median / ref
        print()
        print(
            f"full report within {RATIO_BUDGET} x the reference: "
            f"{'MET' if ratio <= RATIO_BUDGET else 'NOT MET'} (ratio {ratio:.2f}); "
            f"under {SECONDS_BUDGET:g} s: "
            f"{'MET' if full_median < SECONDS_BUDGET else 'NOT MET'} ({full_median:.2f} s)"
        )
        if args.queries:
            from django.test.utils import CaptureQueriesContext

            with CaptureQueriesContext(connection) as captured:
                full()
            print()
            for query in captured.captured_queries:
                print(f"{float(query['time']):7.3f} s  {query['sql'][:150]}")
        if args.profile:
            profiler = cProfile.Profile()
            profiler.runcall(full)
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
            pstats.Stats(profiler).sort_stats("tottime").print_stats(15)
    finally:
        connection.close()
        drop_database(url, create=False)


if __name__ == "__main__":
    main()
