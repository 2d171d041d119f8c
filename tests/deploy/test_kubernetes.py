"""The kustomize overlays render with `kubectl kustomize`, validate against the Kubernetes schemas
(kubernetes-validate, offline, strict), and keep the operational promises of issue 8.

kubernetes-validate has no schemas for CRDs, so ServiceMonitor and PrometheusRule get a structural check here
(the PrometheusRule's rules are also checked by promtool, through alerts.yml, in test_prometheus_rules.py)."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest

from app.settings import Settings
from tests.deploy.support import KUBERNETES_VERSION, OVERLAYS, kustomize

pytestmark = pytest.mark.slow  # real servers, subprocesses or long scenarios: not in the fast tier

CRDS = {("monitoring.coreos.com/v1", "ServiceMonitor"), ("monitoring.coreos.com/v1", "PrometheusRule")}
SECRET_NAME = "supportbot-secrets"


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    return request.param, kustomize(request.param)


def by_kind(resources: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [r for r in resources if r["kind"] == kind]


def one(resources: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = by_kind(resources, kind)
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def test_every_builtin_resource_validates_strictly(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, resources = rendered
    checked = 0
    for resource in resources:
        if (resource["apiVersion"], resource["kind"]) in CRDS:
            continue
        try:
            kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            pytest.fail(f"{resource['kind']}/{resource['metadata']['name']}: {path}: {exc.message}")
        checked += 1
    assert checked >= 5


def test_crds_are_structurally_sound(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, resources = rendered
    monitor = one(resources, "ServiceMonitor")
    service = one(resources, "Service")
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    port_names = {p["name"] for p in service["spec"]["ports"]}
    for endpoint in monitor["spec"]["endpoints"]:
        assert endpoint["port"] in port_names and endpoint["path"] == "/metrics"
    rule = one(resources, "PrometheusRule")
    groups = rule["spec"]["groups"]
    assert groups and all(g["name"] and g["rules"] for g in groups)
    for group in groups:
        for r in group["rules"]:
            assert ("alert" in r) != ("record" in r) and r["expr"]
            assert set(r) <= {"alert", "record", "expr", "for", "labels", "annotations"}


def test_deployment_probes_resources_and_security(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, resources = rendered
    pod = one(resources, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 10001
    assert pod["automountServiceAccountToken"] is False
    (container,) = pod["containers"]
    assert container["command"] + container["args"] == ["supportbot", "serve"]
    assert container["startupProbe"]["httpGet"]["path"] == "/health/live"
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert {"cpu", "memory"} <= container["resources"]["requests"].keys()
    assert {"cpu", "memory"} <= container["resources"]["limits"].keys()
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True and security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert "/data" in mounts
    assert pod["terminationGracePeriodSeconds"] > 5  # more than SHUTDOWN_GRACE_SECONDS


def test_secrets_are_referenced_never_stored(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, resources = rendered
    assert not by_kind(resources, "Secret")
    secret_settings = {
        name.upper()
        for name, field in Settings.model_fields.items()
        if "SecretStr" in str(field.annotation) or name in {"database_url", "api_keys"}
    }
    for workload in by_kind(resources, "Deployment") + by_kind(resources, "CronJob"):
        pod = _pod_spec(workload)
        for container in pod["containers"]:
            refs = [e["secretRef"]["name"] for e in container.get("envFrom", []) if "secretRef" in e]
            assert refs == [SECRET_NAME]
            for env in container.get("env", []):
                if env["name"] in secret_settings:
                    assert "value" not in env, f"{env['name']} must come from a Secret"
                    assert env["valueFrom"]["secretKeyRef"]["name"] == SECRET_NAME


def test_configmap_keys_are_real_settings(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, resources = rendered
    settings = {name.upper() for name in Settings.model_fields}
    config = one(resources, "ConfigMap")
    assert set(config["data"]) <= settings, set(config["data"]) - settings
    assert config["data"]["HTTP_HOST"] == "0.0.0.0"  # noqa: S104
    assert config["data"]["DATA_DIR"] == "/data"
    Settings(**{k.lower(): v for k, v in config["data"].items()})  # values parse as settings


def test_embedded_overlay_is_one_replica_on_a_volume() -> None:
    resources = kustomize("embedded")
    deployment = one(resources, "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    claim = volumes["data"]["persistentVolumeClaim"]["claimName"]
    assert "emptyDir" not in volumes["data"]
    assert claim in {p["metadata"]["name"] for p in by_kind(resources, "PersistentVolumeClaim")}
    assert not by_kind(resources, "HorizontalPodAutoscaler") and not by_kind(resources, "PodDisruptionBudget")
    env = one(resources, "ConfigMap")["data"]
    assert "DATABASE_URL" not in env and "QDRANT_URL" not in env  # SQLite + local Qdrant under DATA_DIR
    assert env["KNOWLEDGE_PATHS"].startswith("/data/")


def test_production_overlay_scales_out_on_shared_state() -> None:
    resources = kustomize("production")
    deployment = one(resources, "Deployment")
    assert "replicas" not in deployment["spec"]  # the autoscaler owns it
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    hpa = one(resources, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert hpa["spec"]["minReplicas"] >= 2 and hpa["spec"]["maxReplicas"] <= 10  # Slack: 10 Socket Mode links
    pdb = one(resources, "PodDisruptionBudget")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    for name in ("DATABASE_URL", "QDRANT_URL"):
        ref = env[name]["valueFrom"]["secretKeyRef"]
        assert ref["name"] == SECRET_NAME and ref.get("optional") is not True


def test_production_kb_sync_has_one_owner_the_leader_job() -> None:
    """No CronJob ingests next to the scheduler: every replica can run `kb_sync` (the leader does), so each
    mounts the knowledge files; the ingestion state is in PostgreSQL, so no volume holds it."""
    resources = kustomize("production")
    assert not by_kind(resources, "CronJob")
    config = one(resources, "ConfigMap")["data"]
    assert config["KB_SYNC_SCHEDULE"] and config["KNOWLEDGE_PATHS"]
    deployment = one(resources, "Deployment")
    pod = _pod_spec(deployment)
    (container,) = pod["containers"]
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    for path in config["KNOWLEDGE_PATHS"].split(","):
        mount = next(m for p, m in mounts.items() if path == p or path.startswith(p + "/"))
        assert mount.get("readOnly") is True
    assert not any(path.startswith(config["DATA_DIR"]) for path in mounts if path != config["DATA_DIR"])
    claims = [p["metadata"]["name"] for p in by_kind(resources, "PersistentVolumeClaim")]
    assert claims == ["supportbot-knowledge"]  # the knowledge files only: no state on a volume
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def _pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    if workload["kind"] == "CronJob":
        spec: dict[str, Any] = workload["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        return spec
    pod: dict[str, Any] = workload["spec"]["template"]["spec"]
    return pod
