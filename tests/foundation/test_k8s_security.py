"""The Kubernetes manifests pass a security review, checked offline (no cluster, no docker).

Every object is validated against the bundled JSON schema of a fixed Kubernetes version
(kubernetes-validate, strict: an unknown or misspelt field fails), and the review's points are
asserted field by field: pods run as a numeric non-root user with a read-only root file system, no
capabilities and the RuntimeDefault seccomp profile; every service has a PodDisruptionBudget; the
NetworkPolicies allow exactly the flows of the internal contract (derived from
`attune.security.policy` and the services' `service_names`); migrations run before the services,
on every release; every image is pinned by digest; credentials come from Secrets, each service
mounting only its own key. The objects are read as `kubectl apply -k` applies them
(`tests.foundation.test_deploy.k8s_documents`).
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from attune.security.policy import POLICY
from tests.foundation.test_deploy import (
    K8S,
    SERVICES,
    Container,
    attune_image,
    console_containers,
    dockerfile,
    dockerfile_container,
    generator_files,
    host_port,
    identity_of,
    image_name,
    k8s_containers,
    k8s_documents,
    kustomization,
    pod_containers,
    service_containers,
)

# The oldest Kubernetes release the manifests must apply to (all their APIs are GA there).
KUBERNETES_VERSION = "1.30"
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
CLIENTS = "*"  # a public RPC's caller: anyone, from anywhere
MIGRATE = ("python", "-m", "attune.storage.migrate", "upgrade")
# Workloads without a PodDisruptionBudget, and why: a budget on one replica blocks node drains.
NO_BUDGET = {"postgres": "the single-instance PostgreSQL for trials"}
# Values of a Secret that are not themselves secret (shared with a ConfigMap or an env value).
NOT_SECRET = {"", "attune"}


def workloads() -> list[dict[str, Any]]:
    return [doc for doc in k8s_documents() if pod_containers(doc)]


def pod_labels(workload: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = workload["spec"]["template"]["metadata"].get("labels", {})
    return labels


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a label selector ({matchLabels}; empty selects everything) matches `labels`."""
    unsupported = set(selector) - {"matchLabels"}
    assert not unsupported, f"selector {selector}: only matchLabels is understood here"
    match: dict[str, str] = selector.get("matchLabels") or {}
    return match.items() <= labels.items()


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for doc in k8s_documents() if doc["kind"] == kind]


# --- schema -------------------------------------------------------------------------------------


@pytest.mark.parametrize("doc", k8s_documents(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_every_object_is_valid_for_kubernetes(doc: dict[str, Any]) -> None:
    try:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as err:
        path = ".".join(str(part) for part in err.path)
        pytest.fail(f"{doc['kind']}/{doc['metadata']['name']}, field {path or '(root)'}: {err.message}")


def test_the_namespace_enforces_the_restricted_pod_security_standard() -> None:
    (namespace,) = of_kind("Namespace")
    labels = namespace["metadata"].get("labels", {})
    assert labels.get("pod-security.kubernetes.io/enforce") == "restricted", labels


# --- pods ---------------------------------------------------------------------------------------


def pod_problems(workload: dict[str, Any]) -> Iterator[str]:
    where = f"{workload['kind']}/{workload['metadata']['name']}"
    pod = workload["spec"]["template"]["spec"]
    context = pod.get("securityContext") or {}
    if context.get("runAsNonRoot") is not True:
        yield f"{where}: pod securityContext.runAsNonRoot is not true"
    for field in ("runAsUser", "runAsGroup", "fsGroup"):
        value = context.get(field)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            yield f"{where}: pod securityContext.{field} is {value!r}, not a numeric non-root id"
    if (context.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
        yield f"{where}: pod securityContext.seccompProfile is not RuntimeDefault"
    if pod.get("automountServiceAccountToken") is not False:
        yield f"{where}: mounts a service account token it never uses"
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(field):
            yield f"{where}: {field} is on"
    for c in pod_containers(workload):
        own = c.get("securityContext") or {}
        name = f"{where} container {c['name']}"
        if own.get("allowPrivilegeEscalation") is not False:
            yield f"{name}: allowPrivilegeEscalation is not false"
        if own.get("readOnlyRootFilesystem") is not True:
            yield f"{name}: readOnlyRootFilesystem is not true"
        capabilities = own.get("capabilities") or {}
        if capabilities.get("drop") != ["ALL"] or capabilities.get("add"):
            yield f"{name}: capabilities are {capabilities}, not drop [ALL] and add nothing"
        if own.get("privileged") or own.get("runAsNonRoot") is False or own.get("runAsUser") == 0:
            yield f"{name}: its securityContext overrides the pod's to run privileged or as root"


def test_every_pod_runs_as_a_numeric_non_root_user_read_only_without_capabilities() -> None:
    assert workloads(), "no workload found"
    problems = [problem for workload in workloads() for problem in pod_problems(workload)]
    assert not problems, "\n".join(problems)


def test_attune_pods_run_as_the_image_user_with_writable_scratch_where_services_write() -> None:
    user = next(args for keyword, args in dockerfile() if keyword == "USER")
    uid, _, gid = user.partition(":")
    home = dockerfile_container().env["ATTUNE_HOME"]
    problems: list[str] = []
    for workload in workloads():
        if not any(image_name(c["image"]) == image_name(attune_image()) for c in pod_containers(workload)):
            continue
        context = workload["spec"]["template"]["spec"]["securityContext"]
        if (str(context.get("runAsUser")), str(context.get("runAsGroup"))) != (uid, gid or uid):
            problems.append(f"{workload['metadata']['name']}: runs as {context}, the image's user is {user}")
        volumes = {v["name"]: v for v in workload["spec"]["template"]["spec"].get("volumes", [])}
        for c in pod_containers(workload):
            scratch = {m["mountPath"] for m in c.get("volumeMounts", []) if "emptyDir" in volumes[m["name"]]}
            needed = {"/tmp", home} if "ATTUNE_LISTEN_ADDRESS" in env_names(c) else {"/tmp"}
            if not needed <= scratch:
                problems.append(
                    f"{workload['metadata']['name']} {c['name']}: no emptyDir at {sorted(needed - scratch)}"
                )
    assert not problems, "\n".join(problems)


def env_names(c: dict[str, Any]) -> set[str]:
    return {item["name"] for item in c.get("env", [])}


# --- availability and ordering ------------------------------------------------------------------


def test_every_service_has_a_disruption_budget_that_still_lets_nodes_drain() -> None:
    problems: list[str] = []
    budgets = of_kind("PodDisruptionBudget")
    for workload in workloads():
        name = workload["metadata"]["name"]
        mine = [b for b in budgets if selects(b["spec"]["selector"], pod_labels(workload))]
        if name in NO_BUDGET:
            if mine:
                problems.append(f"{name}: has a budget, though exempt ({NO_BUDGET[name]})")
            continue
        if len(mine) != 1:
            problems.append(f"{name}: {len(mine)} PodDisruptionBudgets select its pods, expected 1")
            continue
        spec, replicas = mine[0]["spec"], workload["spec"].get("replicas", 1)
        unavailable = spec.get("maxUnavailable", replicas - spec.get("minAvailable", replicas))
        if not 1 <= unavailable < replicas:
            problems.append(f"{name}: {replicas} replicas, budget {spec}: must keep one up and let one go")
    assert not problems, "\n".join(problems)


def test_migrations_run_before_the_services_on_every_release() -> None:
    problems: list[str] = []
    if of_kind("Job"):
        problems.append(f"a Job with a fixed name cannot run again on the next release: {of_kind('Job')}")
    for workload in workloads():
        pod = workload["spec"]["template"]["spec"]
        sources = {s["secretRef"]["name"] for c in pod["containers"] for s in c.get("envFrom", []) if "secretRef" in s}
        needs_database = any(
            "ATTUNE_DATABASE_URL" in c.env for c in k8s_containers() if c.workload == workload["metadata"]["name"]
        )
        if not needs_database:
            continue
        migrations = [c for c in pod.get("initContainers", []) if tuple(c.get("command", [])) == MIGRATE]
        if len(migrations) != 1:
            problems.append(f"{workload['metadata']['name']}: uses the database but no init container runs {MIGRATE}")
            continue
        theirs = {s["secretRef"]["name"] for s in migrations[0].get("envFrom", []) if "secretRef" in s}
        if not theirs & sources:
            problems.append(f"{workload['metadata']['name']}: migrates a database from {theirs}, serves from {sources}")
    assert not problems, "\n".join(problems)


# --- images ---------------------------------------------------------------------------------------


def test_every_image_is_pinned_by_digest() -> None:
    images = {f"{w['metadata']['name']}/{c['name']}": c["image"] for w in workloads() for c in pod_containers(w)}
    assert images, "no container found"
    loose = {where: image for where, image in images.items() if not DIGEST.search(image)}
    assert not loose, f"images not pinned by a sha256 digest: {loose}"
    used = {image_name(image) for image in images.values()}
    unused = {
        rule["name"] for rule in kustomization().get("images", []) if rule.get("newName", rule["name"]) not in used
    }
    assert not unused, f"kustomization.yaml pins images no container runs: {unused}"


# --- credentials --------------------------------------------------------------------------------


def test_no_secret_value_is_written_into_a_workload() -> None:
    values = {
        value
        for doc in of_kind("Secret")
        for value in (doc.get("stringData") or {}).values()
        if str(value) not in NOT_SECRET
    }
    problems: list[str] = []
    for workload in workloads():
        for c in pod_containers(workload):
            for item in c.get("env", []):
                value = str(item.get("value", ""))
                if any(secret in value for secret in values):
                    problems.append(
                        f"{workload['metadata']['name']} {c['name']}: {item['name']} inlines a Secret's value"
                    )
                if re.search(r"PASSWORD|TOKEN$|SECRET_KEY$|DATABASE_URL", item["name"]) and "value" in item:
                    problems.append(f"{workload['metadata']['name']} {c['name']}: {item['name']} is set inline")
    assert not problems, "\n".join(problems)


def test_each_service_mounts_its_own_key_and_the_settings_files_from_secrets() -> None:
    generators = {entry["name"]: generator_files(entry) for entry in kustomization().get("secretGenerator", [])}
    problems: list[str] = []
    for c in (c for c in service_containers() if c.where.startswith("k8s")):
        identity = identity_of(c)
        mounts = secret_mounts(c)
        tls = mounts.get(c.env.get("ATTUNE_TLS_DIR", ""))
        expected = {"ca.pem", f"{identity}.pem", f"{identity}.key"}
        if tls is None or set(generators.get(tls, {})) != expected:
            keys = sorted(generators.get(tls or "", {}))
            problems.append(f"{c.where}: ATTUNE_TLS_DIR must be a Secret of exactly {sorted(expected)}: {tls} {keys}")
        for name in ("ATTUNE_ADMIN_TOKEN_FILE", "ATTUNE_SECRET_KEY_FILE"):
            if name in c.env:
                path = Path(c.env[name])
                secret = mounts.get(str(path.parent))
                if secret is None or path.name not in generators.get(secret, {}):
                    problems.append(f"{c.where}: {name}={path} is not a file of a mounted Secret")
    schedulers = [c for c in service_containers() if c.where.startswith("k8s") and identity_of(c) == "scheduler"]
    if not all("ATTUNE_ADMIN_TOKEN_FILE" in c.env for c in schedulers):
        problems.append("the scheduler has no ATTUNE_ADMIN_TOKEN_FILE: a deployment would have no first token")
    assert not problems, "\n".join(problems)


def secret_mounts(c: Container) -> dict[str, str]:
    """Where a k8s container mounts Secret volumes: mount path → Secret name."""
    workload = next(w for w in workloads() if w["metadata"]["name"] == c.workload)
    volumes = {v["name"]: v for v in workload["spec"]["template"]["spec"].get("volumes", [])}
    return {
        m["mountPath"]: volumes[m["name"]]["secret"]["secretName"]
        for m in c.spec.get("volumeMounts", [])
        if "secret" in volumes[m["name"]] and m.get("readOnly")
    }


def test_generated_secrets_read_files_git_ignores() -> None:
    ignore = (K8S / "secrets" / ".gitignore").read_text().split()
    assert "*" in ignore, "deploy/k8s/secrets/.gitignore must ignore every credential file"
    outside = [
        f"{entry['name']}: {path}"
        for entry in kustomization().get("secretGenerator", [])
        for path in generator_files(entry).values()
        if Path(path).parts[0] != "secrets"
    ]
    assert not outside, f"generated Secrets read files outside deploy/k8s/secrets/: {outside}"
    ca_key = [entry["name"] for entry in kustomization()["secretGenerator"] if "ca.key" in generator_files(entry)]
    assert not ca_key, f"the CA's key, which issues certificates, is in {ca_key}"


# --- network ------------------------------------------------------------------------------------


def served_by() -> dict[str, str]:
    """Full gRPC service name → the service serving it, from each service app's `service_names`."""
    served: dict[str, str] = {}
    for service in SERVICES:
        module = importlib.import_module(f"attune_services.{service}.app")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            names = getattr(cls, "service_names", None)
            if cls.__module__ == module.__name__ and isinstance(names, tuple):
                served.update(dict.fromkeys(names, service))
    return served


def contract_calls() -> set[tuple[str, str]]:
    """(caller, server) for every RPC of the contract: a service identity for an internal RPC,
    CLIENTS for a public one (attune.security.policy)."""
    served = served_by()
    calls: set[tuple[str, str]] = set()
    for method, rule in POLICY.items():
        service = method.split("/")[1]
        if rule.open or service.startswith("grpc."):  # health and reflection: on every server, probed locally
            continue
        server = served.get(service)
        assert server is not None, f"{method} has a policy but no service app serves {service}"
        calls |= {(CLIENTS, server)} if rule.role is not None else {(who, server) for who in rule.identities}
    return calls


def expected_flows() -> tuple[set[tuple[str, str, Any]], set[tuple[str, str, Any]]]:
    """(ingress, egress) edges (source, destination, port) the contract and the deployment need."""
    listen = {c.workload: int(c.env["ATTUNE_LISTEN_ADDRESS"].rsplit(":", 1)[1]) for c in service_containers()}
    listen = {w: port for w, port in listen.items() if w in SERVICES}
    (postgres,) = [s for s in of_kind("Service") if s["metadata"]["name"] == "postgres"]
    db_port = postgres["spec"]["ports"][0]["port"]
    ingress: set[tuple[str, str, Any]] = set()
    egress: set[tuple[str, str, Any]] = set()
    calls = contract_calls()
    public = {server for caller, server in calls if caller == CLIENTS}
    for caller, server in calls:
        # A server clients call takes connections from anywhere, its service callers among them.
        ingress.add((CLIENTS if server in public else caller, server, ("TCP", listen[server])))
        if caller != CLIENTS:
            egress.add((caller, server, ("TCP", listen[server])))
    for c in k8s_containers():
        if "ATTUNE_DATABASE_URL" in c.env:
            ingress.add((c.workload, "postgres", ("TCP", db_port)))
            egress.add((c.workload, "postgres", ("TCP", db_port)))
    for workload in workloads():
        name = workload["metadata"]["name"]
        egress |= {(name, "ns:kube-system", ("UDP", 53)), (name, "ns:kube-system", ("TCP", 53))}
        if name in SERVICES:
            egress.add((name, "ns:observability", ("TCP", 4317)))  # OTLP to the collector
    for c in console_containers():  # the web console: browsers reach it; it calls the scheduler's public API
        if c.where.startswith("k8s"):
            ingress.add((CLIENTS, c.workload, ("TCP", host_port(c.env["ATTUNE_CONSOLE_ADDRESS"])[1])))
            egress.add((c.workload, "scheduler", ("TCP", listen["scheduler"])))
    for c in service_containers():  # Prometheus scrapes each service's metrics port
        if c.where.startswith("k8s") and c.workload in SERVICES and c.env.get("ATTUNE_METRICS_ADDRESS"):
            ingress.add(("ns:observability", c.workload, ("TCP", host_port(c.env["ATTUNE_METRICS_ADDRESS"])[1])))
    return ingress, egress


def peers(rule_peers: list[dict[str, Any]] | None, names: dict[str, dict[str, str]]) -> set[str]:
    """The sources or destinations a rule names: workloads of this namespace, `ns:<name>`, or CLIENTS."""
    if rule_peers is None:
        return {CLIENTS}
    found: set[str] = set()
    for peer in rule_peers:
        namespace = peer.get("namespaceSelector")
        if namespace is not None:
            found.add(f"ns:{(namespace.get('matchLabels') or {}).get('kubernetes.io/metadata.name', '*')}")
        elif "podSelector" in peer:
            found |= {name for name, labels in names.items() if selects(peer["podSelector"], labels)}
        else:
            found.add(f"unsupported peer {peer}")
    return found


def port_keys(rule: dict[str, Any]) -> list[Any]:
    """(protocol, port) of each port a rule allows; a rule without ports allows every port."""
    return [(p.get("protocol", "TCP"), p["port"]) for p in rule.get("ports") or [{"port": "every port"}]]


def allowed_flows() -> tuple[set[tuple[str, str, Any]], set[tuple[str, str, Any]], list[str]]:
    """(ingress, egress) edges the NetworkPolicies allow, and the pods not isolated both ways."""
    names = {w["metadata"]["name"]: pod_labels(w) for w in workloads()}
    ingress: set[tuple[str, str, Any]] = set()
    egress: set[tuple[str, str, Any]] = set()
    isolated: dict[str, set[str]] = {name: set() for name in names}
    for policy in of_kind("NetworkPolicy"):
        spec = policy["spec"]
        targets = [name for name, labels in names.items() if selects(spec["podSelector"], labels)]
        for target in targets:
            isolated[target] |= set(spec.get("policyTypes", []))
            for rule in spec.get("ingress", []):
                ingress |= {(src, target, port) for src in peers(rule.get("from"), names) for port in port_keys(rule)}
            for rule in spec.get("egress", []):
                egress |= {(target, dst, port) for dst in peers(rule.get("to"), names) for port in port_keys(rule)}
    both = {"Ingress", "Egress"}
    open_pods = [f"{name}: {sorted(both - kinds)} open" for name, kinds in isolated.items() if kinds != both]
    return ingress, egress, open_pods


def test_network_policies_deny_by_default_and_allow_exactly_the_contract_flows() -> None:
    expected_in, expected_out = expected_flows()
    allowed_in, allowed_out, open_pods = allowed_flows()
    assert not open_pods, f"pods not isolated by a default-deny policy: {open_pods}"
    assert ("worker", "completion", ("TCP", 50053)) in expected_out, "the contract lost the worker's results"
    problems = [f"ingress allowed beyond the contract: {e}" for e in sorted(allowed_in - expected_in, key=str)]
    problems += [f"ingress the contract needs but is denied: {e}" for e in sorted(expected_in - allowed_in, key=str)]
    problems += [f"egress allowed beyond the contract: {e}" for e in sorted(allowed_out - expected_out, key=str)]
    problems += [f"egress the contract needs but is denied: {e}" for e in sorted(expected_out - allowed_out, key=str)]
    assert not problems, "\n".join(problems)
