"""CPU accounting from Linux /proc, shared by the benchmarks that report which
process used the machine (annotate.py, jury.py)."""

import os
from collections.abc import Callable
from dataclasses import dataclass

TICK = os.sysconf("SC_CLK_TCK")


def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, every process of every user."""
    with open("/proc/stat") as fh:
        values = [int(v) for v in fh.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def process_ticks(pids: list[int]) -> dict[int, int]:
    """utime + stime of each process still alive."""
    out = {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            out[pid] = int(fields[11]) + int(fields[12])  # utime + stime
        except (OSError, IndexError, ValueError):
            continue
    return out


def postgres_pids(database: str) -> list[int]:
    """The backends serving one database (their process titles name it)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                title = fh.read().decode(errors="replace")
        except OSError:
            continue
        if title.startswith("postgres: ") and f" {database} " in title:
            pids.append(int(entry))
    return pids


def grown(before: dict[int, int], after: dict[int, int]) -> float:
    """CPU seconds used between two snapshots by the processes alive at the second.

    A process that started in between counts from zero; one that ended in between
    (a backend recycled by CONN_MAX_AGE) is lost, so this undercounts a little.
    """
    return sum(max(t - before.get(pid, 0), 0) for pid, t in after.items()) / TICK


@dataclass
class Cpu:
    """CPU seconds used in timed windows, and the machine's CPU seconds in them:
    this process (the benchmark's own client or in-process work), the server's
    processes (gunicorn, a Celery worker), PostgreSQL's, everything else."""

    this: float = 0.0
    server: float = 0.0
    postgres: float = 0.0
    other: float = 0.0
    window: float = 0.0

    def add(self, other: "Cpu") -> None:
        self.this += other.this
        self.server += other.server
        self.postgres += other.postgres
        self.other += other.other
        self.window += other.window


class CpuMeter:
    """Who used the machine's CPU between start() and stop().

    `server_pids` lists the server's processes when called (they can come and go).
    """

    def __init__(self, server_pids: Callable[[], list[int]], database: str) -> None:
        self.server_pids = server_pids
        self.database = database

    def start(self) -> None:
        self.machine = machine_ticks()
        self.this = sum(os.times()[:2])
        self.server = process_ticks(self.server_pids())
        self.postgres = process_ticks(postgres_pids(self.database))

    def stop(self) -> Cpu:
        busy1, total1 = machine_ticks()
        this = sum(os.times()[:2]) - self.this
        server = grown(self.server, process_ticks(self.server_pids()))
        postgres = grown(self.postgres, process_ticks(postgres_pids(self.database)))
        busy = (busy1 - self.machine[0]) / TICK
        other = max(busy - this - server - postgres, 0.0)
        return Cpu(this, server, postgres, other, (total1 - self.machine[1]) / TICK)
