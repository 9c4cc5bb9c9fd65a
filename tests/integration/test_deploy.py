"""deploy/: the Dockerfile, the compose file, the systemd units and the Helm chart are
parsed and checked for what operations rely on: a non-root image, health-gated start order,
stop grace periods above the worker's shutdown timeout, restart policies, probes.

The chart is rendered by `helm template` when a helm binary is installed, otherwise by the
small renderer in helm_render.py; the same checks run on either output.
"""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from syncd.config import Settings
from tests.integration.helm_render import render_chart

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
CHART = DEPLOY / "helm" / "syncd"
ROLES = ("api", "worker", "scheduler")
DEFAULT_SHUTDOWN = Settings().shutdown_timeout_seconds


def _seconds(duration: str | int) -> float:
    """A compose duration ("1m30s", "90s", 90) in seconds."""
    if isinstance(duration, int):
        return float(duration)
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, f"bad duration {duration!r}"
    return sum(float(n) * units[u] for n, u in parts)


# --- Dockerfile -------------------------------------------------------------------------


def test_dockerfile_runs_syncd_as_non_root() -> None:
    lines = [
        line.strip()
        for line in (DEPLOY / "Dockerfile").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    final_stage = lines[max(i for i, line in enumerate(lines) if line.startswith("FROM ")) :]
    users = [line.split(None, 1)[1] for line in final_stage if line.startswith("USER ")]
    assert users, "the runtime stage sets no USER"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}, f"runs as {user}"
    entrypoint = [line for line in final_stage if line.startswith("ENTRYPOINT ")]
    assert entrypoint and entrypoint[-1] == 'ENTRYPOINT ["syncd"]'


def test_dockerfile_copies_what_exists() -> None:
    root = DEPLOY.parent
    for line in (DEPLOY / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY ") and "--from=" not in line:
            for source in line.split()[1:-1]:
                assert (root / source).exists(), f"COPY of missing {source}"


# --- compose ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return data


def test_compose_backing_services_have_health_checks(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("postgres", "rabbitmq"):
        check = services[name].get("healthcheck")
        assert check and check.get("test"), f"{name} has no healthcheck"


def test_compose_start_order_is_health_gated(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["migrate"]["command"] == ["migrate"]
    assert services["migrate"]["restart"] == "no"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for role in ROLES:
        service = services[role]
        assert service["command"] == [role]
        depends = service["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", role
        assert depends["postgres"]["condition"] == "service_healthy", role
        assert depends["rabbitmq"]["condition"] == "service_healthy", role
    assert "/ready" in " ".join(services["api"]["healthcheck"]["test"])


def test_compose_grace_period_exceeds_shutdown_timeout(compose: dict[str, Any]) -> None:
    for role in ROLES:
        service = compose["services"][role]
        env = service["environment"]
        timeout = int(env.get("SYNCD_SHUTDOWN_TIMEOUT_SECONDS", DEFAULT_SHUTDOWN))
        assert _seconds(service["stop_grace_period"]) > timeout, role
        assert env["SYNCD_DATABASE_URL"].startswith("postgresql")
        assert env["SYNCD_BROKER_URL"].startswith("amqp://")


# --- systemd ----------------------------------------------------------------------------


def _unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((DEPLOY / "systemd" / name).read_text())
    return parser


def _env_file_shutdown_timeout() -> int:
    for line in (DEPLOY / "systemd" / "syncd.env.example").read_text().splitlines():
        if line.startswith("SYNCD_SHUTDOWN_TIMEOUT_SECONDS="):
            return int(line.split("=", 1)[1])
    return DEFAULT_SHUTDOWN


@pytest.mark.parametrize("role", ROLES)
def test_systemd_unit(role: str) -> None:
    unit = _unit(f"syncd-{role}.service")
    service = unit["Service"]
    assert service["ExecStart"].split()[-1] == role
    assert service["EnvironmentFile"].lstrip("-") == "/etc/syncd/syncd.env"
    assert service["Restart"] == "on-failure"
    assert int(service["TimeoutStopSec"]) > _env_file_shutdown_timeout()
    assert service["User"] not in {"root", "0"}
    assert "syncd-migrate.service" in unit["Unit"]["Requires"]
    assert "syncd-migrate.service" in unit["Unit"]["After"]


def test_systemd_processes_on_one_host_serve_metrics_on_ports_of_their_own() -> None:
    env_file = (DEPLOY / "systemd" / "syncd.env.example").read_text()
    assert not any(line.startswith("SYNCD_METRICS_PORT=") for line in env_file.splitlines())
    ports = {}
    for role in ("worker", "scheduler"):
        environment = _unit(f"syncd-{role}.service")["Service"]["Environment"]
        name, value = environment.split("=", 1)
        assert name == "SYNCD_METRICS_PORT"
        ports[role] = int(value)
    api_port = next(
        int(line.split("=", 1)[1])
        for line in env_file.splitlines()
        if line.startswith("SYNCD_API_PORT=")
    )
    assert len({*ports.values(), api_port}) == 3 and all(ports.values()), ports


def test_systemd_migrate_is_oneshot() -> None:
    service = _unit("syncd-migrate.service")["Service"]
    assert service["Type"] == "oneshot"
    assert service["ExecStart"].split()[-1] == "migrate"
    assert service["EnvironmentFile"] == "/etc/syncd/syncd.env"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_units_verify() -> None:
    units = sorted(str(p) for p in (DEPLOY / "systemd").glob("*.service"))
    result = subprocess.run(
        ["systemd-analyze", "verify", *units], capture_output=True, text=True, timeout=60
    )
    # The binary is not installed here; every other complaint is a real error in a unit.
    problems = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        if line.strip() and "is not executable" not in line
    ]
    assert not problems, problems


# --- Helm chart -------------------------------------------------------------------------


def _helm_documents(overrides: dict[str, Any]) -> list[dict[str, Any]]:
    helm = shutil.which("helm")
    if helm is None:
        return render_chart(CHART, overrides)
    args = [helm, "template", "release", str(CHART)]
    for key, value in overrides.items():
        args += ["--set", f"{key}={value}"]
    out = subprocess.run(args, capture_output=True, text=True, timeout=120, check=True).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


@pytest.fixture(scope="module")
def manifests() -> dict[tuple[str, str], dict[str, Any]]:
    by_kind_name: dict[tuple[str, str], dict[str, Any]] = {}
    for doc in _helm_documents({}):
        for key in ("apiVersion", "kind", "metadata"):
            assert key in doc, f"manifest without {key}: {doc}"
        by_kind_name[(doc["kind"], doc["metadata"]["name"])] = doc
    return by_kind_name


def _deployment(manifests: dict[tuple[str, str], dict[str, Any]], role: str) -> dict[str, Any]:
    return manifests[("Deployment", f"release-syncd-{role}")]


def _hook(doc: dict[str, Any]) -> set[str]:
    annotations = doc["metadata"].get("annotations") or {}
    return set(filter(None, annotations.get("helm.sh/hook", "").split(",")))


def test_chart_has_every_process(manifests: dict[tuple[str, str], dict[str, Any]]) -> None:
    kinds = sorted(manifests)
    assert ("Job", "release-syncd-migrate") in kinds
    assert ("Service", "release-syncd-api") in kinds
    assert ("ConfigMap", "release-syncd") in kinds
    assert ("Secret", "release-syncd") in kinds
    for role in ROLES:
        assert ("Deployment", f"release-syncd-{role}") in kinds


def test_chart_migrate_is_a_hook_job_that_runs_after_its_config(
    manifests: dict[tuple[str, str], dict[str, Any]],
) -> None:
    job = manifests[("Job", "release-syncd-migrate")]
    assert _hook(job) == {"pre-install", "pre-upgrade"}
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["containers"][0]["args"] == ["migrate"]
    weight = int(job["metadata"]["annotations"]["helm.sh/hook-weight"])
    # The Job reads the ConfigMap and Secret, so they must be hooks of a lower weight:
    # ordinary release resources are created only after pre-install hooks.
    for kind in ("ConfigMap", "Secret"):
        config = manifests[(kind, "release-syncd")]
        assert {"pre-install", "pre-upgrade"} <= _hook(config), kind
        assert int(config["metadata"]["annotations"]["helm.sh/hook-weight"]) < weight, kind


@pytest.mark.parametrize("role", ROLES)
def test_chart_deployment_is_well_formed(
    manifests: dict[tuple[str, str], dict[str, Any]], role: str
) -> None:
    deployment = _deployment(manifests, role)
    spec = deployment["spec"]
    labels = spec["template"]["metadata"]["labels"]
    for key, value in spec["selector"]["matchLabels"].items():
        assert labels.get(key) == value, f"{role}: selector {key} does not match the pod"
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    container = pod["containers"][0]
    assert container["args"][0] == role
    refs = container["envFrom"]
    assert {"configMapRef", "secretRef"} == {next(iter(r)) for r in refs}
    config = manifests[("ConfigMap", "release-syncd")]["data"]
    timeout = int(config.get("SYNCD_SHUTDOWN_TIMEOUT_SECONDS", DEFAULT_SHUTDOWN))
    assert pod["terminationGracePeriodSeconds"] > timeout, role
    assert all(k.startswith("SYNCD_") for k in config)
    # Prometheus is pointed at the port the process serves /metrics on.
    scrape_port = int(spec["template"]["metadata"]["annotations"]["prometheus.io/port"])
    if role == "api":
        assert scrape_port == next(p["containerPort"] for p in container["ports"])
    else:
        assert scrape_port == int(config["SYNCD_METRICS_PORT"]) > 0


def test_chart_api_probes_and_service(manifests: dict[tuple[str, str], dict[str, Any]]) -> None:
    container = _deployment(manifests, "api")["spec"]["template"]["spec"]["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    port_names = {p["name"] for p in container["ports"]}
    service = manifests[("Service", "release-syncd-api")]["spec"]
    assert service["ports"][0]["targetPort"] in port_names
    pod_labels = _deployment(manifests, "api")["spec"]["template"]["metadata"]["labels"]
    assert all(pod_labels.get(k) == v for k, v in service["selector"].items())


def test_chart_scheduler_runs_two_leader_elected_replicas(
    manifests: dict[tuple[str, str], dict[str, Any]],
) -> None:
    assert _deployment(manifests, "scheduler")["spec"]["replicas"] == 2


def test_chart_existing_secret_replaces_the_generated_one() -> None:
    docs = _helm_documents({"existingSecret": "site-syncd"})
    assert not [d for d in docs if d["kind"] == "Secret"]
    api = next(
        d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("api")
    )
    refs = api["spec"]["template"]["spec"]["containers"][0]["envFrom"]
    assert {"secretRef": {"name": "site-syncd"}} in refs
