"""Deployment files: docker-compose (validated by docker-compose itself), Dockerfile, Slurm, k8s.

No container engine runs here: ``docker-compose config`` parses, interpolates and validates
the compose file against its schema, and the commands each file runs are parsed by the
real ``sweeper`` CLI.
"""

from __future__ import annotations

import secrets
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

from sweeper.cli import app

REPO = Path(__file__).resolve().parents[1]
COMPOSE = REPO / "docker-compose.yml"
SBATCH = REPO / "deploy" / "slurm" / "worker.sbatch"
K8S_JOB = REPO / "deploy" / "k8s" / "worker-job.yaml"
K8S_SECRET = REPO / "deploy" / "k8s" / "storage-secret.example.yaml"


PASSWORD = secrets.token_hex(12)


def _compose_config(tmp_path: Path, **env: str) -> dict[str, Any]:
    """``docker-compose config`` of the repository's file with ``env`` as its .env."""
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose not installed (apt-get install docker-compose; CI has it)")
    env_file = tmp_path / "env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    result = subprocess.run(
        [binary, "--env-file", str(env_file), "--file", str(COMPOSE), "config"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The rendered services with only the password set in .env."""
    config = _compose_config(tmp_path_factory.mktemp("compose"), POSTGRES_PASSWORD=PASSWORD)
    return config["services"]


def _parses(args: list[str]) -> None:
    """The real CLI accepts ``args`` (``sweeper worker --study x ...``) without running it."""
    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    name, *rest = args
    assert name in commands, f"sweeper has no command {name!r} (it has {', '.join(commands)})"
    commands[name].make_context(name, list(rest))  # raises a UsageError on a bad flag


def test_compose_validates_and_takes_the_password_from_env(services: dict[str, Any]) -> None:
    assert services["db"]["environment"]["POSTGRES_PASSWORD"] == PASSWORD
    for name in ("create-study", "dashboard", "worker", "storage-proxy", "reaper"):
        env = services[name]["environment"]
        assert env["PGPASSWORD"] == PASSWORD
        assert PASSWORD not in env["SWEEPER_STORAGE"]  # libpq reads it from PGPASSWORD
    assert PASSWORD not in COMPOSE.read_text()


def test_compose_fails_without_a_password(tmp_path: Path) -> None:
    if shutil.which("docker-compose") is None:
        pytest.skip("docker-compose not installed (apt-get install docker-compose; CI has it)")
    empty = tmp_path / "env"
    empty.write_text("")
    result = subprocess.run(
        ["docker-compose", "--env-file", str(empty), "--file", str(COMPOSE), "config"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "set POSTGRES_PASSWORD" in result.stderr


def test_compose_never_writes_a_password() -> None:
    """Every password-like setting in the file is a substitution from .env."""
    raw = yaml.safe_load(COMPOSE.read_text())

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if "PASSWORD" in str(key).upper():
                    assert str(value).startswith("${POSTGRES_PASSWORD"), f"{key}: {value}"
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(raw)
    ignored = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=REPO, check=False)
    assert ignored.returncode == 0, ".env must be git-ignored"
    example = subprocess.run(["git", "check-ignore", "-q", ".env.example"], cwd=REPO)
    assert example.returncode == 1, ".env.example must not be git-ignored"


def test_compose_worker_gets_gpus_after_a_healthy_db_and_the_study(
    services: dict[str, Any],
) -> None:
    worker = services["worker"]
    [device] = worker["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia"
    assert device["count"] == "all"
    assert device["capabilities"] == ["gpu"]
    assert worker["depends_on"]["db"]["condition"] == "service_healthy"
    assert worker["depends_on"]["create-study"]["condition"] == "service_completed_successfully"
    assert "pg_isready" in " ".join(services["db"]["healthcheck"]["test"])
    assert any(v.startswith("pgdata:") for v in services["db"]["volumes"])
    mounts = {v.split(":")[1] for v in worker["volumes"]}
    assert {"/artifacts", "/data"} <= mounts
    assert "/artifacts" in {v.split(":")[1] for v in services["dashboard"]["volumes"]}
    assert services["worker"]["command"][:5] == ["worker", "--study", "demo", "--gpus", "auto"]
    for name in ("create-study", "dashboard", "worker"):
        assert "profiles" not in services[name]
        _parses(services[name]["command"])


def test_compose_proxy_profile(tmp_path: Path) -> None:
    services = _compose_config(
        tmp_path, POSTGRES_PASSWORD="x", WORKER_STORAGE="grpc://storage-proxy:13000"
    )["services"]
    for name in ("storage-proxy", "reaper"):
        assert services[name]["profiles"] == ["proxy"]
        _parses(services[name]["command"])
    assert services["storage-proxy"]["command"][0] == "storage-proxy"
    assert services["reaper"]["command"][:2] == ["reap", "demo"]
    # The workers go through the proxy; the proxy and the reaper use the database.
    assert services["worker"]["environment"]["SWEEPER_STORAGE"] == "grpc://storage-proxy:13000"
    for name in ("storage-proxy", "reaper"):
        assert services[name]["environment"]["SWEEPER_STORAGE"].startswith("postgresql://")


def test_dockerfile_installs_as_the_readme_does() -> None:
    text = (REPO / "Dockerfile").read_text()
    readme = (REPO / "README.md").read_text()
    assert "pip install uv && uv sync --frozen" in readme
    runs = [line for line in text.splitlines() if line.startswith("RUN ")]
    assert "RUN pip install uv" in runs
    assert "RUN uv sync --frozen --no-dev" in runs
    assert text.startswith("#") and "\nFROM nvidia/cuda:" in text
    assert 'ENTRYPOINT ["sweeper"]' in text
    ignored = {
        line.strip("/") for line in (REPO / ".dockerignore").read_text().splitlines() if line
    }
    for line in text.splitlines():
        if line.startswith("COPY "):
            *sources, _ = line.split()[1:]
            for source in sources:
                assert (REPO / source).exists(), f"Dockerfile copies missing {source}"
                assert source not in ignored, f".dockerignore drops {source}"


def test_slurm_script_reads_the_url_from_the_environment() -> None:
    text = SBATCH.read_text()
    subprocess.run(["bash", "-n", str(SBATCH)], check=True)
    assert "#SBATCH --array=" in text
    assert ': "${SWEEPER_STORAGE:?' in text
    code = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    assert not any("://" in line for line in code), "no storage URL written in the script"
    command = text[text.index('exec "$SWEEPER_HOME/.venv/bin/sweeper"') :]
    args = shlex.split(command.replace("\\\n", " "))[2:]
    assert args[args.index("--gpus") + 1] == "auto"
    _parses(args)


def test_k8s_job_takes_the_url_from_the_secret() -> None:
    [job] = list(yaml.safe_load_all(K8S_JOB.read_text()))
    [secret] = list(yaml.safe_load_all(K8S_SECRET.read_text()))
    assert job["kind"] == "Job" and secret["kind"] == "Secret"
    pod = job["spec"]["template"]["spec"]
    [container] = pod["containers"]
    [env] = [e for e in container["env"] if e["name"] == "SWEEPER_STORAGE"]
    ref = env["valueFrom"]["secretKeyRef"]
    assert ref["name"] == secret["metadata"]["name"]
    assert ref["key"] in secret["stringData"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1  # one pod per GPU
    assert pod["restartPolicy"] == "Never"  # needed by podFailurePolicy
    _parses(container["args"])
