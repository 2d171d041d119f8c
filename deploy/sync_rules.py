"""Write deploy/k8s/base/prometheusrule.yaml from deploy/prometheus/alerts.yml (one source for the alert rules).

Run after editing alerts.yml: `python deploy/sync_rules.py`. tests/deploy fails when the two drift apart.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

DEPLOY = Path(__file__).resolve().parent
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
TARGET = DEPLOY / "k8s" / "base" / "prometheusrule.yaml"

HEADER = """\
# GENERATED from deploy/prometheus/alerts.yml by `python deploy/sync_rules.py`: edit alerts.yml, not this file.
# A Prometheus Operator resource: the operator loads it when its ruleSelector matches these labels
# (kube-prometheus-stack's default selector wants `release: <its release name>`; patch the label to suit).
"""


class _BlockDumper(yaml.SafeDumper):
    """Writes multi-line strings (PromQL) as `|` blocks, as a person would."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _str)


def prometheus_rule(alerts: dict[str, Any]) -> dict[str, Any]:
    """The PrometheusRule resource carrying the same groups as the plain rule file."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "supportbot", "labels": {"release": "prometheus"}},
        "spec": {"groups": alerts["groups"]},
    }


def render() -> str:
    alerts = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    body = yaml.dump(prometheus_rule(alerts), Dumper=_BlockDumper, sort_keys=False, width=120, allow_unicode=True)
    return HEADER + body


def main() -> None:
    TARGET.write_text(render(), encoding="utf-8")
    print(f"wrote {TARGET.relative_to(DEPLOY.parent)}")


if __name__ == "__main__":
    main()
