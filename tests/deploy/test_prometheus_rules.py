"""The alert rules and the Prometheus config pass promtool, its unit tests pass, and the Kubernetes
PrometheusRule carries exactly the same groups."""

from __future__ import annotations

import importlib.util
import re

import pytest

from tests.deploy.support import ALERTS, DEPLOY, ROOT, alert_expressions, load_yaml, promtool, run

pytestmark = pytest.mark.slow  # real servers, subprocesses or long scenarios: not in the fast tier

REQUIRED_ALERTS = {
    "SupportbotDown",  # service down
    "SupportbotHighErrorRate",  # error rate
    "SupportbotSlowAnswers",  # p95 answer latency
    "SupportbotAbstainRateSpike",  # abstain rate spike
    "SupportbotOutboxBacklog",  # outbox backlog age
    "SupportbotMailboxLag",  # mailbox lag
    "SupportbotEmailLoopBreakerTripped",  # loop breaker tripped
    "SupportbotLLMCircuitOpen",  # LLM circuit open
    "SupportbotLLMCostOverBudget",  # cost per day over budget
}


def test_promtool_accepts_the_rules() -> None:
    result = run([promtool(), "check", "rules", str(ALERTS)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_unit_tests_pass() -> None:
    result = run([promtool(), "test", "rules", "alerts.test.yml"], cwd=DEPLOY / "prometheus")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_accepts_the_compose_prometheus_config() -> None:
    result = run([promtool(), "check", "config", str(DEPLOY / "prometheus" / "prometheus.yml")])
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_the_issue_asks_for_exists_with_severity_and_runbook() -> None:
    rules = [rule for group in load_yaml(ALERTS)["groups"] for rule in group["rules"] if "alert" in rule]
    assert {rule["alert"] for rule in rules} >= REQUIRED_ALERTS
    runbook = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    anchors = {_slug(h) for h in re.findall(r"^#+\s+(.+?)\s*$", runbook, flags=re.MULTILINE)}
    for rule in rules:
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
        page, _, anchor = rule["annotations"]["runbook"].partition("#")
        assert page == "docs/operations.md" and anchor in anchors, f"{rule['alert']}: no heading for #{anchor}"


def test_alerts_on_up_match_the_scrape_job() -> None:
    config = load_yaml(DEPLOY / "prometheus" / "prometheus.yml")
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    for name, expr in alert_expressions().items():
        for job in re.findall(r'up\{job="([^"]+)"\}', expr):
            assert job in jobs, name


def test_prometheusrule_matches_alerts_file() -> None:
    rendered = load_yaml(DEPLOY / "k8s" / "base" / "prometheusrule.yaml")
    assert rendered["spec"]["groups"] == load_yaml(ALERTS)["groups"], "run `python deploy/sync_rules.py`"
    spec = importlib.util.spec_from_file_location("sync_rules", DEPLOY / "sync_rules.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert (DEPLOY / "k8s" / "base" / "prometheusrule.yaml").read_text(encoding="utf-8") == module.render()


def _slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")
