"""The Dockerfile, compose file, systemd unit and monitoring files: linted and checked
against what the bot really serves (hadolint and systemd-analyze run here, the compose file
against the Compose Specification's JSON schema offline; `docker compose config` only where
Docker's compose plugin exists).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bot.config import load_config
from tests.conftest import REPO_ROOT, unavailable

DEPLOY = REPO_ROOT / "deploy"


def _tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found is None:
        unavailable(f"{name} is not installed")
    assert found is not None
    return found


def test_dockerfile_passes_hadolint_and_runs_as_a_non_root_user_with_a_healthcheck() -> None:
    result = subprocess.run(
        [_tool("hadolint"), "--no-color", str(REPO_ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    text = (REPO_ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim", text, re.M)
    assert re.search(r"^USER 10001", text, re.M)
    assert "HEALTHCHECK" in text and "/api/status" in text
    for part in ("bot", "strategies", "migrations"):
        assert f"COPY {part} ./{part}" in text


def test_hadolint_does_fail_on_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN cd /tmp && apt-get install curl\n")
    result = subprocess.run([_tool("hadolint"), str(bad)], capture_output=True, check=False)
    assert result.returncode != 0


def test_the_container_config_is_valid_and_listens_beyond_loopback() -> None:
    config = load_config(DEPLOY / "carrybot.toml")
    assert (config.web.host, config.web.port) == ("0.0.0.0", 8321)


def _verify_unit(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    carrybot = Path(sys.executable).parent / "carrybot"
    unit = tmp_path / "carrybot.service"
    unit.write_text(text.replace("/opt/carrybot/.venv/bin/carrybot", str(carrybot)))
    return subprocess.run(
        [_tool("systemd-analyze"), "verify", str(unit)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_systemd_unit_verifies_and_stops_gracefully(tmp_path: Path) -> None:
    text = (DEPLOY / "carrybot.service").read_text()
    result = _verify_unit(tmp_path, text)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ExecStartPre=/opt/carrybot/.venv/bin/carrybot db upgrade" in text
    assert "ExecStart=/opt/carrybot/.venv/bin/carrybot run" in text
    assert "User=carrybot" in text and "EnvironmentFile=/opt/carrybot/.env" in text
    assert "RestartPreventExitStatus=2" in text and "KillSignal=SIGTERM" in text
    broken = _verify_unit(tmp_path, text.replace("[Service]", "[Service]\nExecStart=relative"))
    assert broken.returncode != 0


def _compose() -> dict:  # type: ignore[type-arg]
    data: dict = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())  # type: ignore[type-arg]
    return data


def test_compose_runs_postgres_16_then_migrates_and_runs_the_bot() -> None:
    services = _compose()["services"]
    pg = services["postgres"]
    assert pg["image"] == "postgres:16"
    assert "pg_isready" in " ".join(pg["healthcheck"]["test"])
    assert any(v.endswith(":/var/lib/postgresql/data") for v in pg["volumes"])
    bot = services["bot"]
    assert bot["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert bot["command"] == ["carrybot db upgrade && exec carrybot run"]
    assert bot["env_file"] == ".env" and bot["restart"] == "unless-stopped"
    assert bot["environment"]["DATABASE_URL"].startswith("postgresql+asyncpg://")
    assert "CARRYBOT_WEB_TOKEN:?" in bot["environment"]["CARRYBOT_WEB_TOKEN"]
    assert bot["ports"] == ["127.0.0.1:8321:8321"]
    for optional in ("prometheus", "grafana"):
        assert services[optional]["profiles"] == ["monitoring"]


def test_prometheus_scrapes_the_bot_and_grafana_queries_existing_metrics() -> None:
    scrape = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())["scrape_configs"][0]
    assert scrape["metrics_path"] == "/metrics"
    assert scrape["static_configs"][0]["targets"] == ["bot:8321"]
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "carrybot.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    names = {n for e in exprs for n in re.findall(r"\bcarrybot_[a-z0-9_]+", e)}
    known = set(re.findall(r"`(carrybot_[a-z0-9_]+)", (REPO_ROOT / "README.md").read_text()))
    for name in names:
        base = re.sub(r"_(bucket|count|sum)$", "", name)
        assert base in known, f"{name} is not a metric the bot serves"
    assert len(dashboard["panels"]) >= 8


def _compose_project(tmp_path: Path, *, drop_name: bool = False) -> Path:
    """A copy of the compose file, deploy/ and an .env, as a user has them after `cp`."""
    text = (REPO_ROOT / "docker-compose.yml").read_text()
    if drop_name:
        text = re.sub(r"^name: .*\n", "", text, flags=re.M)
    (tmp_path / "docker-compose.yml").write_text(text)
    shutil.copytree(DEPLOY, tmp_path / "deploy")
    (tmp_path / ".env").write_text("CARRYBOT_WEB_TOKEN=x\n")
    return tmp_path


def _compose_spec_errors(document: object) -> list[str]:
    """Errors of `document` against the Compose Specification (the schema Compose v2 loads
    with), as vendored by check-jsonschema: offline, no Docker needed."""
    from importlib.resources import files

    import jsonschema

    vendor = files("check_jsonschema.builtin_schemas").joinpath("vendor")
    schema = json.loads(vendor.joinpath("compose-spec.json").read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)  # draft 2020-12
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}"
        for e in validator.iter_errors(document)
    ]


def test_compose_file_validates_against_the_compose_specification_schema() -> None:
    pytest.importorskip("check_jsonschema", reason="pip install -e '.[dev]'")
    compose = _compose()
    assert _compose_spec_errors(compose) == []
    assert "name" in compose and "monitoring" in {
        p for s in compose["services"].values() for p in s.get("profiles", [])
    }
    # The schema catches what Compose v2 would refuse: a misspelt key, a wrong type.
    broken = json.loads(json.dumps(compose))
    broken["services"]["bot"]["restrt"] = "always"
    broken["services"]["postgres"]["healthcheck"] = "pg_isready"
    errors = _compose_spec_errors(broken)
    assert any("restrt" in e for e in errors), errors
    assert any(e.startswith("services/postgres/healthcheck") for e in errors), errors


def test_docker_compose_config_validates_where_docker_compose_exists(tmp_path: Path) -> None:
    docker = shutil.which("docker")
    if (
        docker is None
        or subprocess.run(
            [docker, "compose", "version"], capture_output=True, check=False
        ).returncode
        != 0
    ):
        pytest.skip("Docker's compose plugin is not installed here (README says so)")
    result = subprocess.run(
        [docker, "compose", "config", "--quiet"],
        capture_output=True,
        text=True,
        check=False,
        cwd=_compose_project(tmp_path),
        env={"PATH": "/usr/bin:/bin:/usr/local/bin"},
    )
    assert result.returncode == 0, result.stderr


def test_debian_docker_compose_validates_every_service_and_the_monitoring_profile(
    tmp_path: Path,
) -> None:
    """Debian's docker-compose 1.29 (`make test` installs it under CI) checks the file
    against the Compose schema; it predates the top-level `name`, which is left out here."""
    compose = _tool("docker-compose")
    project = _compose_project(tmp_path, drop_name=True)
    env = {"PATH": "/usr/bin:/bin"}
    quiet = subprocess.run(
        [compose, "config", "--quiet"], capture_output=True, text=True, cwd=project, env=env
    )
    assert quiet.returncode == 0, quiet.stderr
    services = subprocess.run(
        [compose, "--profile", "monitoring", "config", "--services"],
        capture_output=True,
        text=True,
        cwd=project,
        env=env,
    )
    assert services.returncode == 0, services.stderr
    assert set(services.stdout.split()) == {"postgres", "bot", "prometheus", "grafana"}
    resolved = yaml.safe_load(
        subprocess.run(
            [compose, "config"], capture_output=True, text=True, cwd=project, env=env
        ).stdout
    )
    bot = resolved["services"]["bot"]
    assert bot["environment"]["CARRYBOT_WEB_TOKEN"] == "x"
    assert bot["ports"] == ["127.0.0.1:8321:8321/tcp"]
    (project / ".env").write_text("")
    missing = subprocess.run(
        [compose, "config", "--quiet"], capture_output=True, text=True, cwd=project, env=env
    )
    assert missing.returncode != 0 and "CARRYBOT_WEB_TOKEN" in missing.stderr
