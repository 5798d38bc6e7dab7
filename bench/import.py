"""How fast `import_dialogues` writes a large JSONL file, beside a plain COPY.

Run from the repository root against PostgreSQL:

    .venv/bin/python bench/import.py [--rows 100000] [--repeat 3] [--profile]

DATABASE_URL picks the database (postgres://postgres@127.0.0.1:5432/aegis_bench when
unset; it is created if missing and migrated). Each repeat times, on the same rows:

- COPY (reference): psycopg's COPY of rows already built in memory, exactly as the
  importer stores them, into a scratch table shaped like annotation_dialogue;
- import_dialogues: the whole import of the JSONL file into a new batch (read, parse,
  validate, dedupe, write), as the command and the worker run it;
- bulk_create: Django's bulk_create of the same rows into the real table, for context.

The table prints the median of the repeats and each rate's ratio to COPY's. The issue
asks the import to reach at least a third of COPY's rate.
"""

import argparse
import cProfile
import json
import os
import pstats
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/aegis_bench"
SCRATCH_TABLE = "bench_copy_reference"
TARGET = 1 / 3
IMPORT = "import_dialogues (JSONL file -> DB)"
VOCABULARY = (
    "the a of to and in is it you that he was for on are with as his they be at one "
    "have this from or had by hot word but what some we can out other were all there "
    "when up use your how said an each she which do their time if will way about many "
    "then them write would like so these her long make thing see him two has look more "
    "day could go come did number sound no most people my over know water than call "
    "first who may down side been now find any new work part take get place made live "
    "where after back little only round man year came show every good me give our "
    "under name very through just form sentence great think say help low line differ "
    "turn cause much mean before move right boy old too same tell does set three want "
    "air well also play small end put home read hand port large spell add even land "
    "here must big high such follow act why ask men change went light kind off need "
    "house picture try us again animal point mother world near build self earth father "
    "explain chemical weapon recipe dangerous illegal bypass password hack malware "
    "café naïve résumé façade jalapeño über straße déjà señor piñata coöperate"
)
WORDS = VOCABULARY.split()


def configure() -> None:
    """Environment for Django; must run before anything imports it."""
    os.environ.setdefault("DATABASE_URL", DEFAULT_DATABASE_URL)
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    # Forced off even when the caller (make bench) says DJANGO_DEBUG=1: with DEBUG on,
    # every query goes through CursorDebugWrapper and is kept in connection.queries,
    # which costs the ORM paths (bulk_create, lookups) time COPY does not pay.
    os.environ["DJANGO_DEBUG"] = "0"
    os.environ.setdefault("DJANGO_SECRET_KEY", "bench-only-secret")
    os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "localhost")
    sys.path.insert(0, str(ROOT))


def ensure_database(url: str) -> str:
    """Create the database DATABASE_URL names if it is missing; return its name."""
    import dj_database_url
    import psycopg
    from psycopg import sql

    config = dj_database_url.parse(url)
    if "postgresql" not in config["ENGINE"]:
        sys.exit(f"bench/import.py needs PostgreSQL; DATABASE_URL is {url!r}")
    params = {
        "host": config.get("HOST") or None,
        "port": config.get("PORT") or None,
        "user": config.get("USER") or None,
        "password": config.get("PASSWORD") or None,
    }
    name = config["NAME"]
    with psycopg.connect(dbname="postgres", autocommit=True, **params) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [name]
        ).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            print(f"created database {name}")
    return name


# --- data -----------------------------------------------------------------------


def words(rng: random.Random, low: int, high: int) -> str:
    return " ".join(rng.choices(WORDS, k=rng.randint(low, high)))


def generate(path: Path, n: int, seed: int) -> None:
    """N generic JSONL rows; 80% carry a response."""
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as fh:
        for i in range(n):
            row: dict[str, Any] = {"id": f"gen-{i:06d}", "prompt": words(rng, 10, 40)}
            if rng.random() < 0.8:
                row["response"] = words(rng, 20, 80)
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def stored_rows(path: Path, batch_id: int, now: datetime) -> list[tuple[Any, ...]]:
    """The rows as the importer COPYs them (JSON values already dumped to text)."""
    from annotation.imports.formats import content_hash

    out = []
    with path.open(encoding="utf-8") as fh:
        for raw in fh:
            data = json.loads(raw)
            turns = [{"role": "user", "content": data["prompt"]}]
            if "response" in data:
                turns.append({"role": "assistant", "content": data["response"]})
            out.append(
                (
                    batch_id,
                    data["id"],
                    "jsonl",
                    "",
                    json.dumps(turns, ensure_ascii=False),
                    data["prompt"],
                    data.get("response"),
                    False,
                    None,
                    content_hash(turns),
                    "{}",
                    None,
                    now,
                )
            )
    return out


# --- the three timings ----------------------------------------------------------


def new_batch_name() -> str:
    return f"bench-{uuid.uuid4().hex[:12]}"


def drop_batch(name: str) -> None:
    """Remove a batch and its dialogues, and vacuum, so each repeat starts alike."""
    from django.db import connection

    from annotation.models import Batch

    batch = Batch.objects.filter(name=name).first()
    if batch is None:
        return
    with connection.cursor() as cursor:
        # Raw SQL: the ORM's cascade would load 100,000 ids first. Nothing else
        # points at these fresh dialogues (the import writes no votes here).
        cursor.execute(
            "DELETE FROM annotation_dialogue WHERE batch_id = %s", [batch.pk]
        )
    batch.delete()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM annotation_dialogue")


def time_import(path: Path, n: int) -> float:
    from annotation.imports.services import import_dialogues

    name = new_batch_name()
    try:
        start = time.perf_counter()
        result = import_dialogues(
            path=path, batch_name=name, fmt="jsonl", create_batch=True
        )
        elapsed = time.perf_counter() - start
        assert result.error_count == 0, result.errors[:5]
        assert result.imported == n, (result.imported, n)
        assert result.written
    finally:
        drop_batch(name)
    return elapsed


def create_scratch_table() -> None:
    """A scratch table with annotation_dialogue's columns, types, defaults and indexes.

    Chosen: an ordinary (logged) table, LIKE ... INCLUDING ALL, so COPY writes WAL and
    maintains the same primary key, unique indexes (content hash and external id per
    batch) and foreign-key indexes as the real table: the same work but for the
    foreign-key checks, which LIKE never copies. A TEMP or UNLOGGED table would skip
    the WAL the real import pays, flattering the reference.
    """
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {SCRATCH_TABLE}")
        cursor.execute(
            f"CREATE TABLE {SCRATCH_TABLE} (LIKE annotation_dialogue INCLUDING ALL)"
        )


def drop_scratch_table() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {SCRATCH_TABLE}")


def time_copy(rows: list[tuple[Any, ...]]) -> float:
    from django.db import connection

    from annotation.imports.services import DIALOGUE_COLUMNS

    statement = f"COPY {SCRATCH_TABLE} ({', '.join(DIALOGUE_COLUMNS)}) FROM STDIN"
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {SCRATCH_TABLE}")
        raw = cursor.cursor  # psycopg's own cursor, as the importer uses
        start = time.perf_counter()
        with raw.copy(statement) as copy:
            for row in rows:
                copy.write_row(row)
        elapsed = time.perf_counter() - start
        cursor.execute(f"SELECT count(*) FROM {SCRATCH_TABLE}")
        count = cursor.fetchone()[0]
    assert count == len(rows), (count, len(rows))
    return elapsed


def time_bulk_create(rows: list[tuple[Any, ...]]) -> float:
    from annotation.imports.services import DIALOGUE_COLUMNS
    from annotation.models import Batch, Dialogue
    from taxonomy.models import Taxonomy

    name = new_batch_name()
    batch = Batch.objects.create(name=name, taxonomy=Taxonomy.objects.default())
    try:
        objects = [
            Dialogue(
                **dict(zip(DIALOGUE_COLUMNS, row, strict=True))
                | {
                    "batch_id": batch.pk,
                    "turns": json.loads(row[4]),
                    "metadata": json.loads(row[10]),
                }
            )
            for row in rows
        ]
        start = time.perf_counter()
        Dialogue.objects.bulk_create(objects, batch_size=1000)
        elapsed = time.perf_counter() - start
        assert Dialogue.objects.filter(batch=batch).count() == len(rows)
    finally:
        drop_batch(name)
    return elapsed


# --- report ---------------------------------------------------------------------


def print_table(n: int, medians: dict[str, float], repeats: int) -> None:
    reference = n / medians["COPY (reference)"]
    header = ("what", "rows", "median s", "rows/s", "ratio to COPY")
    lines = [
        (
            what,
            f"{n:,}",
            f"{seconds:.3f}",
            f"{n / seconds:,.0f}",
            f"{(n / seconds) / reference:.2f}",
        )
        for what, seconds in medians.items()
    ]
    widths = [max(len(r[i]) for r in [header, *lines]) for i in range(len(header))]

    def fmt(row: tuple[str, ...]) -> str:
        cells = [row[0].ljust(widths[0])]
        cells += [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
        return " | ".join(cells)

    print()
    print(f"median of {repeats} repeat(s)")
    print(fmt(header))
    print("-+-".join("-" * w for w in widths))
    for line in lines:
        print(fmt(line))
    ratio = (n / medians[IMPORT]) / reference
    verdict = "MET" if ratio >= TARGET else "NOT MET"
    print()
    print(f"target: >= {TARGET:.2f} x COPY: {verdict} (import at {ratio:.2f} x COPY)")


def profile_import(path: Path, n: int, top: int = 25) -> None:
    from annotation.imports.services import import_dialogues

    name = new_batch_name()
    profiler = cProfile.Profile()
    try:
        profiler.enable()
        result = import_dialogues(
            path=path, batch_name=name, fmt="jsonl", create_batch=True
        )
        profiler.disable()
        assert result.imported == n, (result.imported, n)
    finally:
        drop_batch(name)
    stats = pstats.Stats(profiler, stream=sys.stdout)
    stats.strip_dirs()
    print(f"\nimport_dialogues of {n:,} rows under cProfile, top {top} by cumulative:")
    stats.sort_stats("cumulative").print_stats(top)
    print(f"top {top} by own time:")
    stats.sort_stats("tottime").print_stats(top)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also run one import under cProfile and print where its time goes",
    )
    args = parser.parse_args()
    n, repeats = args.rows, args.repeat

    configure()
    database = ensure_database(os.environ["DATABASE_URL"])
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    call_command("migrate", interactive=False, verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        server = cursor.fetchone()[0]
    import psycopg

    print(
        f"database {database} (PostgreSQL {server}), psycopg {psycopg.__version__} "
        f"({psycopg.pq.__impl__}), Python {sys.version.split()[0]}"
    )

    with tempfile.TemporaryDirectory(prefix="aegis-bench-") as tmp:
        path = Path(tmp) / "generated.jsonl"
        generate(path, n, args.seed)
        size_mb = path.stat().st_size / 1e6
        print(f"{n:,} generated rows, {size_mb:.1f} MB of JSONL")
        rows = stored_rows(path, batch_id=1, now=timezone.now())

        # Warm up (imports, caches, the connection) on a small file, untimed.
        warm = Path(tmp) / "warm.jsonl"
        generate(warm, min(n, 1000), args.seed + 1)
        time_import(warm, min(n, 1000))

        create_scratch_table()
        times: dict[str, list[float]] = {
            "COPY (reference)": [],
            IMPORT: [],
            "bulk_create": [],
        }
        try:
            for i in range(repeats):
                times["COPY (reference)"].append(time_copy(rows))
                times[IMPORT].append(time_import(path, n))
                times["bulk_create"].append(time_bulk_create(rows))
                print(
                    f"repeat {i + 1}/{repeats}: "
                    + ", ".join(
                        f"{k.split()[0]} {v[-1]:.2f}s" for k, v in times.items()
                    )
                )
        finally:
            drop_scratch_table()
        print_table(n, {k: statistics.median(v) for k, v in times.items()}, repeats)

        if args.profile:
            profile_import(path, n)


if __name__ == "__main__":
    main()
