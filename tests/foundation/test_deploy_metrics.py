"""deploy/'s metrics stay true to the code, offline: Prometheus scrapes every service where it
serves its metrics (Compose and Kubernetes), Grafana is provisioned with the dashboard, and every
query of the dashboard names metrics and labels the services export."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase

from attune import metrics
from tests.foundation.test_deploy import (
    DEPLOY,
    SERVICES,
    compose,
    compose_containers,
    host_port,
    k8s_containers,
    workloads_by_name,
)

DASHBOARD = DEPLOY / "grafana" / "dashboards" / "attune.json"
PROMETHEUS_COMPOSE = DEPLOY / "prometheus" / "compose.yaml"
PROMETHEUS_K8S = DEPLOY / "prometheus" / "kubernetes.yaml"
# Labels Prometheus adds to every series (the scrape jobs add `service` and `pod`), and histograms' `le`.
TARGET_LABELS = {"job", "instance", "service", "pod", "le"}
# What a query may name besides metrics: PromQL's functions, aggregations and keywords, and `$__…` variables.
PROMQL_WORDS = {"sum", "max", "min", "avg", "count", "by", "without", "rate", "increase", "histogram_quantile"}


def exported() -> dict[str, set[str]]:
    """Every sample name a service process can export → its label names: attune.metrics' own
    (counters as `_total`, histograms as `_bucket`, `_sum` and `_count`) and the client's
    process_* and python_* collectors."""
    names: dict[str, set[str]] = {}
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            labels = set(value._labelnames)
        elif isinstance(value, metrics.Sampled):
            labels = set(value.labelnames)
        else:
            continue
        for family in value.describe():
            suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}.get(family.type, [""])
            names.update({family.name + suffix: labels for suffix in suffixes})
    for family in REGISTRY.collect():
        if family.name.startswith(("process_", "python_")):
            names.update({sample.name: set(sample.labels) for sample in family.samples})
    return names


def queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) of every target of the dashboard."""
    dashboard = json.loads(DASHBOARD.read_text())
    return [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        if panel["type"] != "row"
        for target in panel["targets"]
    ]


def test_the_dashboard_shows_throughput_latency_backlog_and_errors() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    rows = {panel["title"] for panel in dashboard["panels"] if panel["type"] == "row"}
    assert {"Throughput", "Latency", "Backlog", "Errors"} <= rows
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"]), "panel ids repeat"


def test_every_dashboard_query_names_metrics_and_labels_the_services_export() -> None:
    names = exported()
    problems: list[str] = []
    named: set[str] = set()
    for title, expr in queries():
        bare = re.sub(r'"[^"]*"', '""', re.sub(r"\[[^\]]*\]", "", expr))  # no strings, no ranges
        words = set(re.findall(r"[a-zA-Z_][a-zA-Z0-9_]*", bare)) - PROMQL_WORDS
        used = {word for word in words if word in names or word.startswith(("attune_", "process_", "python_"))}
        if not used:
            problems.append(f"{title}: {expr} names no metric")
        for metric in used:
            if metric not in names:
                problems.append(f"{title}: {metric} is not a metric the services export")
        labels = words - used
        known = set().union(*(names.get(metric, set()) for metric in used)) | TARGET_LABELS
        problems += [f"{title}: label {label} is on none of {sorted(used)}" for label in sorted(labels - known)]
        named |= used
    assert not problems, "\n".join(problems)
    assert {n for n in named if n.startswith("attune_")} >= {
        "attune_executions_requested_total",
        "attune_executions_finished_total",
        "attune_execution_wait_seconds_bucket",
        "attune_executions_waiting",
        "attune_grpc_server_calls_total",
    }


def test_grafana_is_provisioned_with_prometheus_and_the_dashboard() -> None:
    grafana = compose()["services"]["grafana"]
    mounts = {source: target.split(":")[0] for source, target in (v.split(":", 1) for v in grafana["volumes"])}
    provisioning = DEPLOY / "grafana" / "provisioning"
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"
    (source,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yaml").read_text())["datasources"]
    host, port = host_port(source["url"])
    assert host == "prometheus" and port == 9090 and "prometheus" in compose()["services"]
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "attune.yaml").read_text())["providers"]
    assert mounts["./grafana/dashboards"] == provider["options"]["path"]
    assert (DEPLOY / "grafana" / "dashboards").resolve() == DASHBOARD.parent.resolve()


def _prometheus_config(service: dict[str, Any]) -> Path:
    (flag,) = [arg for arg in service["command"] if arg.startswith("--config.file=")]
    target = flag.split("=", 1)[1]
    (source,) = [str(v).split(":")[0] for v in service["volumes"] if str(v).split(":")[1] == target]
    return (DEPLOY / source).resolve()


def test_compose_prometheus_scrapes_every_service_where_it_serves_metrics() -> None:
    config_path = _prometheus_config(compose()["services"]["prometheus"])
    assert config_path == PROMETHEUS_COMPOSE.resolve()
    (job,) = yaml.safe_load(config_path.read_text())["scrape_configs"]
    (sd,) = job["dns_sd_configs"]
    services = {c.workload: c for c in compose_containers() if "ATTUNE_LISTEN_ADDRESS" in c.env}
    assert set(sd["names"]) == set(services) == SERVICES
    for name, c in services.items():
        assert host_port(c.env["ATTUNE_METRICS_ADDRESS"]) == ("0.0.0.0", sd["port"]), name


def test_kubernetes_pods_announce_their_metrics_port_to_the_scrape_job() -> None:
    (job,) = yaml.safe_load(PROMETHEUS_K8S.read_text())["scrape_configs"]
    assert job["kubernetes_sd_configs"][0]["namespaces"]["names"] == ["attune"]
    kept = [r for r in job["relabel_configs"] if r.get("action") == "keep"]
    assert kept and kept[0]["source_labels"] == ["__meta_kubernetes_pod_annotation_prometheus_io_scrape"]
    workloads = workloads_by_name()
    services = [c for c in k8s_containers() if "ATTUNE_LISTEN_ADDRESS" in c.env]
    assert {c.workload for c in services} == SERVICES
    for c in services:
        port = host_port(c.env["ATTUNE_METRICS_ADDRESS"])[1]
        annotations = workloads[c.workload]["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true", c.where
        assert int(annotations["prometheus.io/port"]) == port, c.where
        assert port in {p["containerPort"] for p in c.spec["ports"]}, f"{c.where}: no containerPort {port}"
