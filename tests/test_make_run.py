"""`make install` and `make run` as a newcomer sees them (scripts/install.sh, run.sh):
what is being installed and how far it is, no wall of setuptools warnings, and the
address printed only once the server answers; Ctrl+C (here SIGTERM) stops all."""

import os
import pty
import select
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# A stand-in for the virtualenv's python: `-m pip install` prints what pip prints
# (a download, the install, setuptools' editable-install warning block) and exits
# as $FAKE_PIP_EXIT says. The real pip runs in CI's `make install` every time.
FAKE_PYTHON = textwrap.dedent(
    """\
    #!/usr/bin/env bash
    if [ "$1 $2" = "-m pip" ]; then
      echo "Collecting django>=5.2"
      echo "  Downloading django-5.2.19-py3-none-any.whl (8.3 MB)"
      sleep 1
      echo "Collecting torch==2.13.0"
      echo "Building editable for aegis-studio (pyproject.toml): started"
      echo "  BuildBackendWarning: Editable installation." >&2
      echo "  Please be careful with folders in your working directory" >&2
      echo "Installing collected packages: django, torch, aegis-studio"
      sleep 1
      if [ "${FAKE_PIP_EXIT:-0}" != 0 ]; then
        echo "ERROR: No matching distribution found for torch==2.13.0" >&2
        exit "$FAKE_PIP_EXIT"
      fi
      echo "Successfully installed aegis-studio-0.1.0 django-5.2.19 torch-2.13.0"
      exit 0
    fi
    exec python3 "$@"
    """
)


def fake_venv(tmp_path: Path) -> Path:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    python = venv / "bin" / "python"
    python.write_text(FAKE_PYTHON)
    python.chmod(0o755)
    return venv


def install(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["scripts/install.sh"],
        cwd=ROOT,
        env={
            **os.environ,
            "VENV": str(fake_venv(tmp_path)),
            "INSTALL_LOG": str(tmp_path / "install.log"),
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_install_says_what_it_installs_and_keeps_pips_noise_in_its_log(tmp_path):
    # when make install runs (pip as above)
    done = install(tmp_path)

    # then each step says what it is and that it is done, and nothing else shows
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("Setting up ")
    assert "about 3 GB" in lines[0]
    steps = [line.split(": done")[0] for line in lines if ": done (" in line]
    assert steps == [
        "  upgrading pip",
        "  installing the app, its tools and the CPU jury",
        "  installing the demo jury's model (SmolLM2-135M-Instruct)",
    ]
    assert "BuildBackendWarning" not in done.stdout + done.stderr
    assert "Please be careful" not in done.stdout + done.stderr
    assert lines[-1].startswith("Installed in ")
    assert lines[-1].endswith(f"pip's log is {tmp_path / 'install.log'}")
    # and the whole of pip's output is kept in the log
    log = (tmp_path / "install.log").read_text()
    assert "BuildBackendWarning: Editable installation." in log


def test_install_shows_pips_last_lines_when_it_fails(tmp_path):
    failed = install(tmp_path, FAKE_PIP_EXIT="1")

    assert failed.returncode == 1
    assert f"  install failed; the last lines of {tmp_path / 'install.log'}:" in (
        failed.stdout
    )
    assert (
        "    | ERROR: No matching distribution found for torch==2.13.0" in failed.stdout
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    return state != "Z"


def read_until(fd: int, seen: bytearray, done, timeout: float) -> bool:
    """Read the terminal into `seen` until `done(seen)` or the time is up."""
    deadline = time.monotonic() + timeout
    while not done(seen) and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # the terminal closed: everything in it has ended
                return done(seen)
            if not chunk:
                return done(seen)
            seen += chunk
    return done(seen)


@pytest.mark.xdist_group("make-run")
def test_make_run_prints_the_address_once_the_server_answers_and_ctrl_c_stops_all(
    tmp_path,
):
    # given a fresh data folder (SQLite, the embedded broker) and a free port, and
    # make run started in a terminal of its own, as a person starts it
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    env = {
        **{
            k: v
            for k, v in os.environ.items()
            if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "DJANGO_SETTINGS_MODULE")
        },
        "AEGIS_DATA_DIR": str(tmp_path),
        "PORT": str(port),
        "VENV": str(Path(sys.executable).parents[1]),
    }
    pid, fd = pty.fork()
    if pid == 0:  # the terminal's side: the script, nothing else
        os.chdir(ROOT)
        os.execve("scripts/run.sh", ["scripts/run.sh"], env)
    seen = bytearray()
    children: list[int] = []
    try:
        # when it starts, then the address comes once the server answers
        assert read_until(fd, seen, lambda s: b"Aegis Studio is at" in s, 240), (
            seen.decode(errors="replace")[-2000:]
        )
        assert answers(url + "accounts/login/"), "the address came before the server"
        text = seen.decode(errors="replace").replace("\r\n", "\n")
        steps = [
            line
            for line in text.splitlines()
            if line.startswith(("Migrating", "Loading", "Starting the"))
        ]
        assert steps == [
            "Migrating the database",
            "Loading the demo",
            "Starting the worker (imports, exports, reports), the demo jury's worker "
            "and beat",
            f"Starting the web server on 127.0.0.1:{port}",
        ]
        assert f"  Aegis Studio is at {url}   (Ctrl+C stops web and workers)" in text
        children = [
            int(p)
            for p in subprocess.run(
                ["pgrep", "-P", str(pid)], capture_output=True, text=True
            ).stdout.split()
        ]
        assert len(children) >= 4  # two workers, beat and the web server

        # when the person presses Ctrl+C
        os.write(fd, b"\x03")

        # then it says so and ends, within a warm shutdown's time
        read_until(fd, seen, lambda s: b"Stopping web and workers" in s, 30)
        deadline = time.monotonic() + 90
        while os.waitpid(pid, os.WNOHANG) == (0, 0):
            assert time.monotonic() < deadline, seen.decode(errors="replace")[-2000:]
            read_until(fd, seen, lambda s: False, 0.5)
        pid = 0
    finally:
        if pid:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)
    # and the web server and the workers it started are gone
    time.sleep(1)
    assert not answers(url + "accounts/login/")
    assert [p for p in children if process_alive(p)] == []
