"""Each pytest-xdist process talks to its own Redis database (its own Celery queue)."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROBE = (
    "import json, django; django.setup(); from config.celery import app;"
    "print(json.dumps(app.conf.broker_url))"
)


def broker_for(worker: str, slot: str = "") -> str:
    env = {
        **os.environ,
        "AEGIS_TEST_SLOT": slot,
        "DJANGO_SETTINGS_MODULE": "config.settings_test",
        "CELERY_BROKER_URL": "redis://127.0.0.1:6379/15",
        "PYTEST_XDIST_WORKER": worker,
    }
    out = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_each_test_process_uses_its_own_broker_database():
    assert broker_for("gw0") == "redis://127.0.0.1:6379/15"
    assert broker_for("gw1") == "redis://127.0.0.1:6379/14"


def test_a_second_test_run_in_another_slot_uses_other_broker_databases():
    assert broker_for("gw0", slot="1") == "redis://127.0.0.1:6379/13"
    assert broker_for("gw1", slot="1") == "redis://127.0.0.1:6379/12"
    assert broker_for("gw1", slot="3") == "redis://127.0.0.1:6379/8"
