"""CPU accounting from Linux /proc, shared by the benchmarks that report which
process used the machine (annotate.py, jury.py)."""

import os

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
