"""Every metric an alert or the dashboard uses exists in /metrics of a running service.

Starts the real `supportbot serve` (python -m app.cli serve) on an ephemeral port with an empty DATA_DIR, asks
it one question over the API so the per-inquiry series carry samples, and reads /metrics. A metric family is
present even before its first labelled sample (prometheus-client writes its HELP and TYPE lines), so the
check is on the names Prometheus would scrape: counters as NAME_total, histograms as NAME_bucket/_sum/_count.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.deploy.support import (
    PROMETHEUS_BUILTINS,
    alert_expressions,
    dashboard_expressions,
    metric_names,
    used_metric_names,
)
from tests.ports import free_port

pytestmark = pytest.mark.slow  # real servers, subprocesses or long scenarios: not in the fast tier

API_KEY = "deploy-test-key-0123456789"
START_TIMEOUT = 180.0


def _exposed_names(families: dict[str, str]) -> set[str]:
    names: set[str] = set()
    for name, kind in families.items():
        if kind == "counter":
            names |= {f"{name}_total", f"{name}_created"}
        elif kind == "histogram":
            names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count", f"{name}_created"}
        else:
            names.add(name)
    return names


class RunningService:
    def __init__(self, process: subprocess.Popen[str], base_url: str, metrics_url: str, log: list[str]) -> None:
        self.process = process
        self.base_url = base_url
        self.metrics_url = metrics_url
        self.log = log

    def get(self, url: str) -> str:
        with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 (loopback)
            return str(response.read().decode())

    def ask(self, question: str) -> dict[str, object]:
        request = urllib.request.Request(  # noqa: S310 (loopback)
            self.base_url + "/api/ask",
            data=json.dumps({"question": question}).encode(),
            headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310 (loopback)
            body: dict[str, object] = json.loads(response.read())
            return body


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    workdir = tmp_path_factory.mktemp("service")
    env = {
        key: value
        for key, value in os.environ.items()
        if key in {"PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV", "PYTHONPATH"}
    }
    env.update(
        DATA_DIR=str(workdir / "data"),
        HTTP_HOST="127.0.0.1",
        HTTP_PORT="0",
        METRICS_PORT=str(free_port()),  # as deployed: /metrics on a listener of its own
        API_KEYS=API_KEY,
        LOG_FORMAT="json",
        LOG_LEVEL="INFO",
        SHUTDOWN_GRACE_SECONDS="0",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        PYTHONPATH=str(Path(__file__).resolve().parents[2]),
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve"],
        cwd=workdir,  # no stray .env is read
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    log: list[str] = []

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            log.append(line)
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    base_url = metrics_url = ""
    try:
        while not base_url:
            try:
                line = lines.get(timeout=START_TIMEOUT)
            except queue.Empty:
                pytest.fail("supportbot serve did not start:\n" + "".join(log[-40:]))
            if process.poll() is not None and lines.empty():
                pytest.fail(f"supportbot serve exited with {process.returncode}:\n" + "".join(log[-40:]))
            if '"service.started"' in line:
                started = json.loads(line)
                base_url, metrics_url = started["http"], started["metrics"]
        yield RunningService(process, base_url, metrics_url, log)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def exposed(service: RunningService) -> set[str]:
    answer = service.ask("How do I reset my password?")
    assert answer["outcome"]
    text = service.get(service.metrics_url)
    families = {family.name: family.type for family in text_string_to_metric_families(text)}
    names = _exposed_names(families)
    assert 'supportbot_inquiries_total{channel="api"' in text  # the question above was counted
    return names


@pytest.mark.long
def test_metrics_used_by_alerts_and_dashboard_exist(exposed: set[str]) -> None:
    used = used_metric_names()
    assert len(used) >= 20
    missing = {name: sorted(where) for name, where in used.items() if name not in exposed}
    assert not missing, f"used but not in /metrics: {missing}"


def test_only_our_metrics_or_prometheus_builtins_are_used(exposed: set[str]) -> None:
    identifier = re.compile(r"\b([a-z_][a-z0-9_]*)\s*(?:\{|\[)")
    for where, expr in {**alert_expressions(), **dashboard_expressions()}.items():
        for name in identifier.findall(expr):
            assert name in exposed or name in PROMETHEUS_BUILTINS, f"{where}: unknown series {name}"


def test_the_dashboard_shows_every_metric_the_service_exposes(exposed: set[str]) -> None:
    shown = {name for expr in dashboard_expressions().values() for name in metric_names(expr)}
    families = {n.removesuffix("_total") for n in exposed if n.startswith("supportbot_") and n.endswith("_total")}
    families |= {n.removesuffix("_bucket") for n in exposed if n.startswith("supportbot_") and n.endswith("_bucket")}
    families |= {
        n
        for n in exposed
        if n.startswith("supportbot_") and not n.endswith(("_total", "_created", "_bucket", "_sum", "_count"))
    }
    not_shown = {f for f in families if not any(s == f or s.startswith(f + "_") for s in shown)}
    assert not not_shown, f"metrics without a dashboard panel: {sorted(not_shown)}"


def test_health_endpoints_answer(service: RunningService) -> None:
    assert json.loads(service.get(service.base_url + "/health/live"))["status"] == "ok"
