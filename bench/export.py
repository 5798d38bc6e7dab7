"""How fast a training-data export is, beside pandas writing the same rows.

Run from the repository root against PostgreSQL:

    .venv/bin/python bench/export.py [--dialogues 36000] [--repeat 5] [--profile]

BENCH_DATABASE_URL names the database (postgres://postgres@127.0.0.1:5432/
aegis_bench_export when unset). It is dropped and created again at the start,
migrated, and dropped at the end; the script reads no DATABASE_URL and refuses a name
without "bench" in it.

One batch holds --dialogues labelled dialogues: three human votes each (a clear
majority; categories on unsafe votes), a response on every third one, and the jury's
decision on the responses whose prompt is unsafe; every twentieth prompt also has a
refusal. Their final labels are derived once before timing.

Timed, each --repeat times, interleaved, median reported:

- reference: pandas writing the export's own rows, already in a DataFrame per split,
  straight to the same formats: `to_json(orient="records")` (the Aegis JSON),
  `to_parquet`, `to_csv`, and the guard fine-tuning examples (their messages built
  beforehand) with `to_json(orient="records", lines=True)`;
- export: `annotation.export.services.write_export` end to end into a fresh folder: bringing
  the final labels up to date (nothing changed, so nothing is written), reading
  every dialogue with its final label, splitting, and writing all the files, the
  dataset card and the manifest with its hashes.

Peak memory, each in a run of its own: the peak of the Python objects the export
allocates (tracemalloc), and its peak resident memory above what the process held
before it (Linux's VmHWM after resetting it through /proc/self/clear_refs; memory the
earlier runs freed is reused, so this one can read low).

The issue's budget: the export within 2 times the reference and under 10 seconds.
"""

import argparse
import cProfile
import json
import os
import pstats
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_db import configure_django, drop_database

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/aegis_bench_export"
BATCH = "bench-export"
ANNOTATORS = ("bench-ann-a", "bench-ann-b", "bench-ann-c")
RATIO_BUDGET = 2.0
SECONDS_BUDGET = 10.0


def fill(n: int, seed: int) -> Any:
    """The batch: dialogues, human votes with categories, jury decisions, refusals."""
    import random

    from django.db import transaction

    from accounts.models import User
    from annotation.models import (
        Augmentation,
        Batch,
        Dialogue,
        JuryDecision,
        Label,
        LabelCategory,
        VoteKind,
    )
    from taxonomy.models import Taxonomy

    rng = random.Random(seed)
    words = [
        "alpha",
        "bravo",
        "charlie",
        "delta",
        "echo",
        "foxtrot",
        "golf",
        "hotel",
        "india",
        "juliet",
        "kilo",
        "lima",
        "mike",
        "november",
        "oscar",
        "papa",
        "quebec",
        "romeo",
        "sierra",
        "tango",
    ]
    taxonomy = Taxonomy.objects.default()
    categories = list(
        taxonomy.categories.filter(retired=False, group="core").order_by("order")
    )
    people = [
        User.objects.create_user(username=name, password=None, role="annotator")
        for name in ANNOTATORS
    ]
    with transaction.atomic():
        batch = Batch.objects.create(name=BATCH, taxonomy=taxonomy, labels_required=3)
        plan = []
        dialogues = []
        for i in range(n):
            unsafe = rng.random() < 0.4
            prompt = f"case {i}: " + " ".join(rng.choices(words, k=40))
            response = (
                "reply " + " ".join(rng.choices(words, k=80)) if i % 3 == 0 else None
            )
            turns = [{"role": "user", "content": prompt}]
            if response is not None:
                turns.append({"role": "assistant", "content": response})
            dialogues.append(
                Dialogue(
                    batch=batch,
                    external_id=f"d{i}",
                    turns=turns,
                    prompt=prompt,
                    response=response,
                    content_hash=f"{i:064d}",
                    votes=3,
                    claimed=3,
                )
            )
            plan.append((unsafe, rng.sample(categories, 2), rng.choice([2, 3])))
        for i in range(0, n, 20):
            if plan[i][0]:
                refusal = "I can't help with that. " + " ".join(
                    rng.choices(words, k=30)
                )
                dialogues.append(
                    Dialogue(
                        batch=batch,
                        external_id=f"d{i}",
                        augmentation=Augmentation.REFUSAL,
                        turns=[
                            {"role": "user", "content": dialogues[i].prompt},
                            {"role": "assistant", "content": refusal},
                        ],
                        prompt=dialogues[i].prompt,
                        response=refusal,
                        content_hash=f"r{i:063d}",
                    )
                )
        dialogues = Dialogue.objects.bulk_create(dialogues, batch_size=5000)
        votes, links, refusal_labels, decisions = [], [], [], []
        for i in range(n):
            unsafe, cats, n_unsafe = plan[i]
            for r in range(3):
                label = "unsafe" if unsafe and r < n_unsafe else "safe"
                votes.append(
                    Label(
                        dialogue=dialogues[i],
                        kind=VoteKind.HUMAN,
                        annotator=people[r],
                        label=label,
                        time_spent_ms=20000,
                    )
                )
            if unsafe and dialogues[i].response is not None:
                decisions.append(
                    JuryDecision(
                        dialogue=dialogues[i],
                        run_key="bench",
                        decision=rng.choice(["safe", "unsafe"]),
                        categories=[cats[0].name],
                        valid_votes=3,
                        total_votes=3,
                    )
                )
        votes = Label.objects.bulk_create(votes, batch_size=5000)
        for position, vote in enumerate(votes):
            i, r = divmod(position, 3)
            if vote.label == "unsafe":
                cats = plan[i][1][: 1 + (r == 0)]
                links += [
                    LabelCategory(label=vote, category=c, position=k)
                    for k, c in enumerate(cats)
                ]
        for refusal in dialogues[n:]:
            refusal_labels.append(
                Label(
                    dialogue=refusal,
                    kind=VoteKind.REFERENCE,
                    label="unsafe",
                    response_label="safe",
                    prompt_label_source="human",
                    response_label_source="refusal_data_augmentation",
                )
            )
        Label.objects.bulk_create(refusal_labels, batch_size=5000)
        LabelCategory.objects.bulk_create(links, batch_size=5000)
        JuryDecision.objects.bulk_create(decisions, batch_size=5000)
    return batch, len(dialogues) - n


def frames(out: Path) -> dict[str, Any]:
    """The rows an export wrote, as the reference's DataFrames (per split)."""
    import pandas as pd

    result = {}
    for split in ("train", "validation", "test"):
        aegis = pd.DataFrame(json.loads((out / "aegis" / f"{split}.json").read_text()))
        sft = pd.read_json(out / "sft" / f"{split}.jsonl", lines=True)
        result[split] = (aegis, sft)
    return result


def reference(data: dict[str, Any], target: Path) -> None:
    for folder in ("aegis", "parquet", "csv", "sft"):
        (target / folder).mkdir(parents=True, exist_ok=True)
    for split, (aegis, sft) in data.items():
        aegis.to_json(
            target / "aegis" / f"{split}.json", orient="records", force_ascii=False
        )
        aegis.to_parquet(target / "parquet" / f"{split}.parquet", index=False)
        aegis.to_csv(target / "csv" / f"{split}.csv", index=False)
        sft.to_json(
            target / "sft" / f"{split}.jsonl",
            orient="records",
            lines=True,
            force_ascii=False,
        )


def peak_memory_mb(fn: Any) -> float | None:
    """Peak resident memory while fn runs, above what the process held before."""
    status = Path("/proc/self/status")
    clear = Path("/proc/self/clear_refs")
    if not status.exists() or not clear.exists():
        return None

    def field(name: str) -> int:
        for line in status.read_text().splitlines():
            if line.startswith(name + ":"):
                return int(line.split()[1])
        return 0

    try:
        clear.write_text("5")  # resets VmHWM to the current RSS
    except OSError:
        return None
    before = field("VmRSS")
    fn()
    return (field("VmHWM") - before) / 1024


def python_peak_mb(fn: Any) -> float:
    """The peak of the Python objects allocated while fn runs (tracemalloc)."""
    import tracemalloc

    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dialogues", type=int, default=36_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=20261128)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    url = configure_django(DEFAULT_DATABASE_URL)
    drop_database(url, create=True)
    import django

    django.setup()
    from django.core.management import call_command

    from annotation.export.services import ExportParams, write_export
    from annotation.final_labels.services import derive_batch

    scratch = Path(tempfile.mkdtemp(prefix="aegis-bench-export-"))
    try:
        call_command("migrate", interactive=False, verbosity=0)
        started = time.perf_counter()
        batch, refusals = fill(args.dialogues, args.seed)
        derive_batch(batch)
        print(
            f"{args.dialogues} labelled dialogues and {refusals} refusals written and "
            f"derived in {time.perf_counter() - started:.1f} s; {os.cpu_count()} CPUs"
        )
        params = ExportParams(batches=(BATCH,), seed=7)
        runs = iter(range(1_000_000))

        def export() -> Any:
            return write_export(params, scratch / f"export-{next(runs)}")

        first = export()  # warm-up; its rows are the reference's frames
        data = frames(first.out)
        rows = sum(c["rows"] for c in first.counts.values())

        def ref() -> None:
            reference(data, scratch / f"reference-{next(runs)}")

        ref()
        if args.profile:
            profile = cProfile.Profile()
            profile.runcall(export)
            pstats.Stats(profile).sort_stats("cumulative").print_stats(25)
        results: dict[str, list[float]] = {"reference": [], "export": []}
        for _ in range(args.repeat):
            for key, fn in (("reference", ref), ("export", export)):
                start = time.perf_counter()
                fn()
                results[key].append(time.perf_counter() - start)
        memory = peak_memory_mb(export)
        python_memory = python_peak_mb(export)
        ref_median = statistics.median(results["reference"])
        table = [("what", "rows", "median s", "ratio")]
        for key, what in (
            ("reference", "pandas writes the same frames (reference)"),
            ("export", "write_export end to end, every format"),
        ):
            median = statistics.median(results[key])
            table.append(
                (what, str(rows), f"{median:.3f}", f"{median / ref_median:.2f}")
            )
        widths = [max(len(r[i]) for r in table) for i in range(4)]
        print()
        print(f"median of {args.repeat} repeat(s)")
        for n, row in enumerate(table):
            print(
                " | ".join(
                    c.ljust(w) if i == 0 else c.rjust(w)
                    for i, (c, w) in enumerate(zip(row, widths, strict=True))
                )
            )
            if n == 0:
                print("-+-".join("-" * w for w in widths))
        export_median = statistics.median(results["export"])
        ratio = export_median / ref_median
        print()
        print(
            f"peak memory of one export: {python_memory:.0f} MB of Python objects "
            "(tracemalloc)"
            + (
                f", {memory:.0f} MB of resident memory above the process"
                if memory is not None
                else ""
            )
        )
        met = ratio <= RATIO_BUDGET and export_median < SECONDS_BUDGET
        print(
            f"export within {RATIO_BUDGET:g} x the reference and under "
            f"{SECONDS_BUDGET:g} s: {ratio:.2f} x, {export_median:.2f} s: "
            + ("MET" if met else "NOT MET")
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        from django.db import connections

        connections.close_all()
        drop_database(url, create=False)


if __name__ == "__main__":
    main()
