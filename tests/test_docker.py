"""Static checks of the container set-up in docker/ (no Docker engine needed)."""

from pathlib import Path

import yaml

DOCKER_DIR = Path(__file__).resolve().parents[1] / "docker"

JURY_SERVICES = {"jury-mixtral", "jury-nemo", "jury-gemma"}
APP_SERVICES = {"web", "worker"} | JURY_SERVICES
DATABASE_URL = "postgres://aegis:${POSTGRES_PASSWORD:-aegis}@postgres:5432/aegis"


def _services():
    compose = yaml.safe_load((DOCKER_DIR / "compose.yaml").read_text())
    return compose["services"]


def _environment(service):
    # Compose accepts a mapping or a list of "KEY=VALUE"; normalise to a dict.
    env = service.get("environment", {})
    if isinstance(env, list):
        return dict(item.split("=", 1) for item in env)
    return env


def _instruction_args(dockerfile, keyword):
    """Arguments of every `keyword` instruction, line continuations joined."""
    text = (DOCKER_DIR / dockerfile).read_text().replace("\\\n", " ")
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            if word.upper() == keyword:
                result.append(rest.strip())
    return result


def test_compose_services_are_exactly_the_expected_set():
    assert set(_services()) == {
        "postgres",
        "redis",
        "web",
        "worker",
        "beat",
        "jury-mixtral",
        "jury-nemo",
        "jury-gemma",
    }


def test_one_beat_sends_the_reaper_from_the_app_image():
    beat = _services()["beat"]
    assert beat["command"][:4] == ["celery", "-A", "config", "beat"]
    assert beat["deploy"]["replicas"] == 1
    assert beat["build"]["dockerfile"] == "docker/Dockerfile"


def test_jury_workers_build_from_dockerfile_jury():
    services = _services()
    for name in JURY_SERVICES:
        assert services[name]["build"]["dockerfile"] == "docker/Dockerfile.jury", name


def test_web_and_worker_build_from_main_dockerfile():
    services = _services()
    for name in ("web", "worker"):
        assert services[name]["build"]["dockerfile"] == "docker/Dockerfile", name


def test_jury_workers_reserve_nvidia_gpus():
    services = _services()
    expected_counts = {"jury-mixtral": 4, "jury-nemo": 1, "jury-gemma": 1}
    for name, count in expected_counts.items():
        devices = services[name]["deploy"]["resources"]["reservations"]["devices"]
        assert len(devices) == 1, name
        assert devices[0]["driver"] == "nvidia", name
        assert "gpu" in devices[0]["capabilities"], name
        assert devices[0]["count"] == count, name


def test_jury_queues_are_prefixed_and_distinct():
    services = _services()
    queues = {
        name: _environment(services[name])["JURY_QUEUE"] for name in JURY_SERVICES
    }
    for name, queue in queues.items():
        assert queue.startswith("jury."), name
    assert len(set(queues.values())) == len(JURY_SERVICES)
    assert queues == {
        "jury-mixtral": "jury.mixtral-8x22b",
        "jury-nemo": "jury.mistral-nemo-12b",
        "jury-gemma": "jury.gemma-2-27b",
    }


def test_jury_workers_get_every_model_path_from_host():
    services = _services()
    for name in JURY_SERVICES:
        env = _environment(services[name])
        for var in ("JURY_MIXTRAL_MODEL", "JURY_NEMO_MODEL", "JURY_GEMMA_MODEL"):
            assert env[var] == "${" + var + ":-}", (name, var)


def test_web_and_worker_wait_for_healthy_postgres_and_redis():
    services = _services()
    for name in ("web", "worker"):
        depends_on = services[name]["depends_on"]
        for dep in ("postgres", "redis"):
            assert depends_on[dep]["condition"] == "service_healthy", (name, dep)


def test_every_app_service_has_database_and_broker_urls():
    services = _services()
    for name in APP_SERVICES:
        env = _environment(services[name])
        assert env["DATABASE_URL"] == DATABASE_URL, name
        assert env["CELERY_BROKER_URL"] == "redis://redis:6379/0", name


def test_jury_dockerfile_builds_from_vllm_image():
    from_lines = _instruction_args("Dockerfile.jury", "FROM")
    assert len(from_lines) == 1
    assert from_lines[0].startswith("vllm/vllm-openai")


def test_jury_dockerfile_resets_vllm_entrypoint():
    assert _instruction_args("Dockerfile.jury", "ENTRYPOINT") == ["[]"]


def test_jury_dockerfile_cmd_runs_solo_celery_worker():
    cmds = _instruction_args("Dockerfile.jury", "CMD")
    assert len(cmds) == 1
    assert "--pool=solo" in cmds[0]
    assert '-Q "$JURY_QUEUE"' in cmds[0]
