"""Fixtures for the jury's end-to-end tests: real Celery worker processes on Redis.

Unlike the suite's `celery_worker` (a worker thread in the test process), these
start `celery -A config worker` as a child process, so a test can kill it like a
crash would. The child reads the same test database and the same Redis database
as this process.
"""

import base64
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import redis
from django.db import connection

from jury.backends.transformers_backend import model_cache_root

REPO_ROOT = Path(__file__).resolve().parents[2]
# kombu's Redis transport keeps a queue as one list per priority step, named
# "<queue>", "<queue>\x06\x163", ...; a message taken but not yet acked waits in the
# "unacked" hash (tag -> [payload, exchange, routing key]) and the "unacked_index"
# sorted set (tag -> the time it was taken).
PRIORITY_KEYS = ("", "\x06\x163", "\x06\x166", "\x06\x169")
UNACKED = "unacked"
UNACKED_INDEX = "unacked_index"
LOG_TAIL = 12_000


def database_url() -> str:
    """The URL of the test database this process is using (test_<name>[_gwN])."""
    settings = connection.settings_dict
    assert settings["ENGINE"] == "django.db.backends.postgresql", (
        "the jury's worker tests need PostgreSQL (make test sets DATABASE_URL)"
    )
    user = quote(settings["USER"] or "", safe="")
    password = quote(settings["PASSWORD"] or "", safe="")
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = settings["HOST"] or "127.0.0.1"
    port = f":{settings['PORT']}" if settings["PORT"] else ""
    return f"postgres://{auth}{host}{port}/{settings['NAME']}"


def broker_url() -> str:
    """This process's broker: settings_test gives each xdist process its own DB."""
    from config.celery import app

    url = str(app.conf.broker_url)
    assert url.startswith("redis://"), (
        f"the jury's worker tests need Redis (make test sets CELERY_BROKER_URL): {url}"
    )
    return url


@dataclass(frozen=True)
class Unacked:
    """A message a worker took and has not acknowledged."""

    tag: str
    task_id: str
    queue: str
    taken_at: float
    args: list[Any]


@dataclass
class Broker:
    """The Redis database behind Celery, seen the way kombu lays it out."""

    client: redis.Redis
    touched: set[str] = field(default_factory=set)

    def waiting(self, queues: Sequence[str]) -> int:
        return sum(self.client.llen(q + p) for q in queues for p in PRIORITY_KEYS)

    def unacked(self, queues: Sequence[str]) -> list[Unacked]:
        found = []
        for tag, raw in self.client.hgetall(UNACKED).items():
            payload, _exchange, routing_key = json.loads(raw)
            if routing_key not in queues:
                continue
            body = payload["body"]
            if payload["properties"].get("body_encoding") == "base64":
                body = base64.b64decode(body)
            args, _kwargs, _embed = json.loads(body)
            taken_at = self.client.zscore(UNACKED_INDEX, tag)
            found.append(
                Unacked(
                    tag=tag.decode(),
                    task_id=payload["headers"]["id"],
                    queue=routing_key,
                    taken_at=taken_at if taken_at is not None else 0.0,
                    args=args,
                )
            )
        return found

    def purge(self, queues: Sequence[str]) -> None:
        """Drop the queues' messages, waiting or taken by a dead worker.

        Left from an earlier, interrupted run they would name runs and dialogues of
        another database (primary keys start again at 1 in a new test database).
        """
        self.touched.update(queues)
        self.client.delete(*[q + p for q in queues for p in PRIORITY_KEYS])
        for message in self.unacked(queues):
            self.client.hdel(UNACKED, message.tag)
            self.client.zrem(UNACKED_INDEX, message.tag)


@pytest.fixture
def broker(transactional_db: None) -> Iterator[Broker]:
    """The test broker's Redis database; queues purged with it are purged again after."""
    client = redis.Redis.from_url(broker_url())
    found = Broker(client=client)
    yield found
    if found.touched:
        found.purge(sorted(found.touched))
    client.close()


@dataclass
class WorkerProcess:
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def kill(self) -> None:
        """SIGKILL: a crash; nothing is acked, restored or cleaned up."""
        if self.alive:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self, timeout: float = 10) -> None:
        """SIGTERM (Celery's warm shutdown), then SIGKILL if it does not exit."""
        if not self.alive:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()


@pytest.fixture
def start_jury_worker(
    transactional_db: None, tmp_path: Path
) -> Iterator[Callable[..., WorkerProcess]]:
    """Start `celery -A config worker` processes on given queues; all stopped after.

    The worker sees this test's database (committed rows: the test is
    transactional) and its broker. `env` adds variables, e.g.
    CELERY_VISIBILITY_TIMEOUT. The model cache is the repository's (or
    AEGIS_MODEL_CACHE), so SmolLM2's GGUF is converted once, not once per worker.
    """
    started: list[WorkerProcess] = []

    def start(
        queues: Sequence[str], env: dict[str, str] | None = None
    ) -> WorkerProcess:
        log = tmp_path / f"worker-{len(started) + 1}.log"
        child_env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DATABASE_URL": database_url(),
            "CELERY_BROKER_URL": broker_url(),
            "DJANGO_DEBUG": "1",
            "AEGIS_MODEL_CACHE": str(model_cache_root()),
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        with log.open("wb") as out:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "config",
                    "worker",
                    "-Q",
                    ",".join(queues),
                    "--pool=solo",
                    "--concurrency=1",
                    "-l",
                    "INFO",
                    "-n",
                    f"e2e-{len(started) + 1}@%h",
                    # No other worker to sync with or gossip to: a faster start.
                    "--without-mingle",
                    "--without-gossip",
                ],
                cwd=REPO_ROOT,
                env=child_env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        worker = WorkerProcess(process=process, log=log)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()
    # Shown by pytest only when the test fails.
    for worker in started:
        print(f"--- {worker.log.name} (exit {worker.process.returncode}) ---")
        print(worker.log_text()[-LOG_TAIL:])
