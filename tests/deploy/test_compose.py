"""deploy/docker-compose.yml: Docker Compose v2 accepts it (`config` needs no engine), and the stack keeps its
promises: ports on 127.0.0.1 only, health checks everywhere, secrets from .env, Prometheus and Grafana wired."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.support import COMPOSE, DEPLOY, compose_command, load_yaml, run

pytestmark = pytest.mark.slow  # real servers, subprocesses or long scenarios: not in the fast tier

EXPECTED_SERVICES = {"supportbot", "qdrant", "postgres", "prometheus", "grafana"}


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    """The stack as Compose resolved it (interpolated, paths absolute)."""
    result = run([*compose_command(), "-f", str(COMPOSE), "config", "--format", "json"])
    assert result.returncode == 0, result.stderr
    resolved: dict[str, Any] = json.loads(result.stdout)
    return resolved


def test_compose_accepts_the_file_quietly() -> None:
    result = run([*compose_command(), "-f", str(COMPOSE), "config", "--quiet"])
    assert result.returncode == 0, result.stderr
    assert "warn" not in result.stderr.lower(), result.stderr


def test_the_stack_has_every_service(config: dict[str, Any]) -> None:
    assert set(config["services"]) == EXPECTED_SERVICES


def test_published_ports_bind_to_loopback_only(config: dict[str, Any]) -> None:
    published = 0
    for name, service in config["services"].items():
        for port in service.get("ports", []):
            published += 1
            assert port.get("host_ip") == "127.0.0.1", f"{name} publishes {port} beyond 127.0.0.1"
    assert published >= 4
    assert "ports" not in config["services"]["postgres"]


def test_every_service_has_a_healthcheck_and_restarts(config: dict[str, Any]) -> None:
    for name, service in config["services"].items():
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        assert service.get("restart") == "unless-stopped", name


def test_supportbot_reads_env_file_and_uses_the_bundled_servers(config: dict[str, Any]) -> None:
    bot = config["services"]["supportbot"]
    raw = load_yaml(COMPOSE)["services"]["supportbot"]
    assert raw["env_file"] == [{"path": "../.env", "required": False}]
    env = bot["environment"]
    assert env["DATABASE_URL"].startswith("postgresql+asyncpg://supportbot:")
    assert env["DATABASE_URL"].endswith("@postgres:5432/supportbot")
    assert env["QDRANT_URL"] == "http://qdrant:6333"
    assert env["HTTP_HOST"] == "0.0.0.0"  # noqa: S104
    assert env["DATA_DIR"] == "/data"
    assert bot["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert bot["depends_on"]["qdrant"]["condition"] == "service_healthy"
    assert bot["read_only"] is True and bot["cap_drop"] == ["ALL"] and bot["user"] == "10001:10001"
    assert "/health/live" in " ".join(bot["healthcheck"]["test"])
    assert bot["build"]["dockerfile"] == "deploy/Dockerfile"
    assert any(v["target"] == "/data" and v["type"] == "volume" for v in bot["volumes"])


def test_env_file_values_reach_the_bot_but_stack_addresses_win(tmp_path: Path) -> None:
    (tmp_path / "deploy").mkdir()
    shutil.copy(COMPOSE, tmp_path / "deploy" / COMPOSE.name)
    (tmp_path / ".env").write_text("SLACK_BOT_TOKEN=xoxb-from-env-file\nQDRANT_URL=http://elsewhere:6333\n")
    result = run([*compose_command(), "-f", str(tmp_path / "deploy" / COMPOSE.name), "config", "--format", "json"])
    assert result.returncode == 0, result.stderr
    env = json.loads(result.stdout)["services"]["supportbot"]["environment"]
    assert env["SLACK_BOT_TOKEN"] == "xoxb-from-env-file"
    assert env["QDRANT_URL"] == "http://qdrant:6333"


def test_bind_mounts_exist(config: dict[str, Any]) -> None:
    for name, service in config["services"].items():
        for volume in service.get("volumes", []):
            if volume["type"] == "bind":
                assert Path(volume["source"]).exists(), f"{name}: {volume['source']} does not exist"


def test_prometheus_scrapes_supportbot_and_loads_the_alerts(config: dict[str, Any]) -> None:
    prometheus = config["services"]["prometheus"]
    mount = next(v for v in prometheus["volumes"] if v["target"] == "/etc/prometheus")
    assert mount["source"] == str(DEPLOY / "prometheus")
    scrape = load_yaml(DEPLOY / "prometheus" / "prometheus.yml")
    assert "alerts.yml" in scrape["rule_files"]
    job = next(j for j in scrape["scrape_configs"] if j["job_name"] == "supportbot")
    assert job["static_configs"][0]["targets"] == ["supportbot:9464"]  # METRICS_PORT, not the public port
    assert job["metrics_path"] == "/metrics"


def test_grafana_provisions_the_datasource_and_dashboard(config: dict[str, Any]) -> None:
    grafana = config["services"]["grafana"]
    targets = {v["target"]: v["source"] for v in grafana["volumes"] if v["type"] == "bind"}
    provisioning = DEPLOY / "grafana" / "provisioning"
    assert targets["/etc/grafana/provisioning"] == str(provisioning)
    datasource = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text(encoding="utf-8"))
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"
    provider = yaml.safe_load((provisioning / "dashboards" / "supportbot.yml").read_text(encoding="utf-8"))
    dashboards_dir = provider["providers"][0]["options"]["path"]
    assert targets[dashboards_dir] == str(DEPLOY / "grafana" / "dashboards")
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "supportbot.json").read_text(encoding="utf-8"))
    assert dashboard["uid"] == "supportbot" and dashboard["panels"]
