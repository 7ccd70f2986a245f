"""deploy/ stays true to the code: its files parse, its containers run commands that exist, its
ATTUNE_* variables are ones the config loader reads, its ports, probes and collector agree, and it
runs with TLS and tokens, its credentials in Secrets.

Pure Python, no docker and no cluster: the files are read as data and checked against
pyproject.toml and `attune.config.Settings`. The Kubernetes manifests are read as `kubectl apply
-k` would apply them: with the kustomization's images and generated Secrets (`k8s_documents`).
The security review of the manifests is tests/foundation/test_k8s_security.py.
"""

from __future__ import annotations

import ast
import base64
import copy
import functools
import importlib
import json
import os
import re
import shlex
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from attune.config import WORKER_WITHHELD_VARIABLES, ConfigError, Settings
from attune.security.tls import is_loopback, tls_configured
from attune_services.cli.errors import UsageError
from attune_services.cli.main import build_parser

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
COMPOSE_FILE = DEPLOY / "docker-compose.yaml"
COLLECTOR_FILE = DEPLOY / "otel-collector.yaml"
PYPROJECT: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text())
SCRIPTS: dict[str, str] = PYPROJECT["project"]["scripts"]
# The web console (attune-console) serves HTTP, not gRPC: a client of the scheduler, checked apart
# from the services (`console_containers` and the tests at the end of this file).
CONSOLE = "console"
# The services are the console scripts that serve gRPC: attune-scheduler → "scheduler", …
SERVICES = {script.removeprefix("attune-") for script in SCRIPTS if script.startswith("attune-")} - {CONSOLE}
# Programs an attune container may run besides its console scripts (the python base image has them).
INTERPRETERS = {"python", "python3", "sh", "bash"}
# Kinds whose spec.template is a pod that runs containers.
POD_TEMPLATES = {"Deployment", "StatefulSet", "DaemonSet", "Job"}
PROBES = ("readinessProbe", "livenessProbe", "startupProbe")
LOCAL_PORT = re.compile(r"(?:127\.0\.0\.1|localhost):(\d+)")  # what a compose healthcheck dials
OTLP_ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT"
# The settings deploy/ relies on to run with TLS and tokens (docs/operations.md); each must be
# read by attune.config.Settings, whether deploy/ sets it today or an operator adds it.
SECURITY_VARIABLES = {
    "ATTUNE_TLS_DIR",
    "ATTUNE_TLS_CA",
    "ATTUNE_TLS_CERT",
    "ATTUNE_TLS_KEY",
    "ATTUNE_IDENTITY",
    "ATTUNE_INSECURE",
    "ATTUNE_ADMIN_TOKEN_FILE",
    "ATTUNE_SECRET_KEY",
    "ATTUNE_SECRET_KEY_FILE",
    "ATTUNE_ACTION_USER",
}


@dataclass(frozen=True)
class Container:
    """One container a deploy file runs: its workload name, image, argv, environment and probes."""

    where: str
    workload: str  # the compose service or the k8s Deployment/Job it belongs to
    image: str
    argv: tuple[str, ...]
    env: dict[str, str]
    checks: tuple[tuple[str, ...], ...] = ()  # health-check commands it runs (compose healthcheck)
    spec: dict[str, Any] = field(default_factory=dict)  # the compose service or the k8s container


def load_yaml_documents(path: Path) -> list[Any]:
    """Every non-empty document of a (multi-document) YAML file (a copy: callers may change it)."""
    return copy.deepcopy(_parsed(path))


@functools.cache
def _parsed(path: Path) -> list[Any]:
    # Parsed once per run: the checks read the same files hundreds of times.
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def compose() -> dict[str, Any]:
    """The compose file with its anchors and `<<:` merges resolved."""
    (document,) = load_yaml_documents(COMPOSE_FILE)
    return dict(document)


def kustomization() -> dict[str, Any]:
    (document,) = load_yaml_documents(K8S / "kustomization.yaml")
    return dict(document)


def k8s_documents() -> list[dict[str, Any]]:
    """Every object `kubectl apply -k deploy/k8s` applies (a copy: see `_k8s_documents`)."""
    return copy.deepcopy(_k8s_documents())


@functools.cache
def _k8s_documents() -> list[dict[str, Any]]:
    """Every object `kubectl apply -k deploy/k8s` applies: the listed resources with the
    kustomization's images set, and the Secrets its secretGenerator makes (keys only: their files
    are written at deployment and never committed). Generated names are left without kustomize's
    hash suffix, which it also appends to every reference."""
    rules = kustomization().get("images", [])
    documents = [doc for name in kustomization()["resources"] for doc in load_yaml_documents(K8S / name)]
    for doc in documents:
        for c in pod_containers(doc):
            c["image"] = kustomize_image(c["image"], rules)
    return documents + generated_secrets()


def pod_containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The init containers and containers of a workload's pod template (none for other kinds)."""
    if doc["kind"] not in POD_TEMPLATES:
        return []
    pod = doc["spec"]["template"]["spec"]
    containers: list[dict[str, Any]] = pod.get("initContainers", []) + pod["containers"]
    return containers


def image_name(image: str) -> str:
    """`registry:5000/attune:1.2@sha256:…` → `registry:5000/attune`: the image without tag or digest."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return name[: len(name) - len(last)] + last.split(":", 1)[0]


def kustomize_image(image: str, rules: list[dict[str, str]]) -> str:
    """What kustomize's `images:` makes of a container's image (name, newName, newTag, digest)."""
    name = image_name(image)
    for rule in rules:
        if rule["name"] == name:
            new = rule.get("newName", name)
            if "digest" in rule:
                return f"{new}@{rule['digest']}"
            return f"{new}:{rule['newTag']}" if "newTag" in rule else new + image[len(name) :]
    return image


def generator_files(entry: dict[str, Any]) -> dict[str, str]:
    """A secretGenerator entry's keys and the files they come from (`key=path`, or the file's name)."""
    files: dict[str, str] = {}
    for item in entry.get("files", []):
        key, _, path = item.rpartition("=")
        files[key or Path(path).name] = path
    return files


def generated_secrets() -> list[dict[str, Any]]:
    """The Secrets the kustomization's secretGenerator makes, with their keys (values empty)."""
    namespace = kustomization().get("namespace")
    secrets = []
    for entry in kustomization().get("secretGenerator", []):
        keys = [*generator_files(entry), *(item.partition("=")[0] for item in entry.get("literals", []))]
        metadata = {"name": entry["name"], "namespace": entry.get("namespace", namespace)}
        secrets.append(
            {"apiVersion": "v1", "kind": "Secret", "metadata": metadata, "type": "Opaque"}
            | {"data": dict.fromkeys(keys, "")}
        )
    return secrets


def dockerfile() -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (KEYWORD, arguments), continuation lines joined."""
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines()]
    instructions = [line.split(None, 1) for line in lines if line and not line.startswith("#")]
    return [(keyword.upper(), args) for keyword, args in instructions]


def env_pairs(items: list[str]) -> dict[str, str]:
    """`KEY=VALUE` items as a dict."""
    return {key: value for key, _, value in (item.partition("=") for item in items)}


def env_dict(env: Any) -> dict[str, str]:
    """A compose `environment` (mapping or KEY=VALUE list) as a dict of strings."""
    if isinstance(env, list):
        return env_pairs(env)
    return {key: str(value) for key, value in (env or {}).items()}


def attune_image() -> str:
    """The image compose builds from deploy/Dockerfile: every container running it is Attune's."""
    (image,) = {service["image"] for service in compose()["services"].values() if "build" in service}
    return str(image)


def compose_containers() -> list[Container]:
    containers = []
    for name, service in compose()["services"].items():
        test = service.get("healthcheck", {}).get("test", [])
        checks = (tuple(test[1:]),) if test[:1] == ["CMD"] else (("sh", "-c", test[1]),) if test else ()
        command = service.get("command", [])
        argv = tuple(shlex.split(command) if isinstance(command, str) else command)
        where = f"{COMPOSE_FILE.name} service {name}"
        env = env_dict(service.get("environment"))
        containers.append(Container(where, name, service.get("image", ""), argv, env, checks, service))
    return containers


def k8s_containers() -> list[Container]:
    """Every container of every pod template, with its envFrom config maps and secrets expanded."""
    documents = k8s_documents()
    sources = {(doc["kind"], doc["metadata"]["name"]): config_data(doc) for doc in config_documents()}
    containers = []
    for doc in documents:
        for c in pod_containers(doc):
            env: dict[str, str] = {}
            for source in c.get("envFrom", []):
                kind = "ConfigMap" if "configMapRef" in source else "Secret"
                env.update(sources[(kind, (source.get("configMapRef") or source["secretRef"])["name"])])
            env.update({item["name"]: item["value"] for item in c.get("env", []) if "value" in item})
            where = f"k8s {doc['kind']}/{doc['metadata']['name']} container {c['name']}"
            argv = tuple(c.get("command", []))
            containers.append(Container(where, doc["metadata"]["name"], c["image"], argv, env, spec=c))
    return containers


def config_documents() -> list[dict[str, Any]]:
    return [doc for doc in k8s_documents() if doc["kind"] in ("ConfigMap", "Secret")]


def config_data(doc: dict[str, Any]) -> dict[str, str]:
    """A ConfigMap's data, or a Secret's stringData and (decoded) data."""
    data = dict(doc.get("data") or {})
    if doc["kind"] == "Secret":
        data = {key: base64.b64decode(value).decode() for key, value in data.items()}
        data.update(doc.get("stringData") or {})
    return data


def dockerfile_container() -> Container:
    """What `docker run` of the image does with no command: its CMD with its ENV."""
    env: dict[str, str] = {}
    argv: tuple[str, ...] = ()
    for keyword, args in dockerfile():
        if keyword == "ENV":
            env.update(env_pairs(shlex.split(args)))
        elif keyword in ("CMD", "ENTRYPOINT"):
            argv = tuple(json.loads(args))
    return Container("Dockerfile", "image", attune_image(), argv, env)


def all_containers() -> list[Container]:
    return [dockerfile_container(), *compose_containers(), *k8s_containers()]


def attune_containers() -> list[Container]:
    return [c for c in all_containers() if image_name(c.image) == image_name(attune_image())]


def service_containers() -> list[Container]:
    """The containers that run a service: those that listen (not the migrations, tls-init or packs)."""
    return [c for c in attune_containers() if "ATTUNE_LISTEN_ADDRESS" in c.env]


def host_port(address: str) -> tuple[str, int]:
    """`dns:///scheduler.attune.svc:50051`, `http://otel-collector:4317` or `0.0.0.0:50051` → (host, port)."""
    host, _, port = address.split("://", 1)[-1].lstrip("/").rpartition(":")
    return host, int(port.rstrip("/"))


def identity_of(c: Container) -> str:
    """The service a container runs (`attune-worker` → "worker")."""
    return c.argv[0].removeprefix("attune-")


def listen_port(c: Container) -> int:
    return host_port(c.env["ATTUNE_LISTEN_ADDRESS"])[1]


def health_probe_ports(argv: tuple[str, ...] | list[str]) -> set[int]:
    """The local ports an `attune health HOST:PORT` probe command checks (none for another command)."""
    words = list(argv)
    if words[:2] != ["attune", "health"]:
        return set()
    return {int(port) for port in LOCAL_PORT.findall(" ".join(words[2:]))}


def k8s_probe_ports(spec: dict[str, Any]) -> dict[str, set[int]]:
    """Each probe of a k8s container and the ports it checks: a grpc probe's, or `attune health`'s."""
    probes: dict[str, set[int]] = {}
    for kind in PROBES:
        probe = spec.get(kind) or {}
        if "grpc" in probe:
            probes[kind] = {probe["grpc"]["port"]}
        elif "exec" in probe:
            probes[kind] = health_probe_ports(probe["exec"]["command"])
    return probes


def python_snippets(argv: tuple[str, ...]) -> list[str]:
    """The code of every `python -c CODE` an argv runs, directly or inside an `sh -c` script."""
    if len(argv) > 2 and argv[0] in ("python", "python3") and argv[1] == "-c":
        return [argv[2]]
    if len(argv) > 2 and argv[0] in ("sh", "bash") and argv[1] == "-c":
        return re.findall(r'python3? -c "([^"]*)"', argv[2])
    return []


def programs(argv: tuple[str, ...]) -> list[str]:
    """The programs an argv runs: argv[0], and the `attune*` commands of an `sh -c` script."""
    if len(argv) > 2 and argv[0] in ("sh", "bash") and argv[1] == "-c":
        return [argv[0], *re.findall(r"(?<![\w./-])(attune[\w-]*)(?=\s)", argv[2])]
    return list(argv[:1])


def cli_arguments(argv: tuple[str, ...]) -> list[list[str]]:
    """The arguments of every `attune` CLI call; in a script, the words up to the first quote."""
    if argv[:1] == ("attune",):
        return [list(argv[1:])]
    if len(argv) > 2 and argv[0] in ("sh", "bash") and argv[1] == "-c":
        return [call.split() for call in re.findall(r"(?<![\w./-])attune\s+([^\"';|&]*)", argv[2])]
    return []


def import_errors(code: str) -> list[str]:
    """What a `python -c` snippet imports or calls that does not exist (empty when all does)."""
    errors: list[str] = []
    imported: dict[str, Any] = {}
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                imported[alias.asname or alias.name] = importlib.import_module(alias.name)
        elif isinstance(node, ast.ImportFrom) and node.module:
            module = importlib.import_module(node.module)
            for alias in node.names:
                if not hasattr(module, alias.name):
                    try:
                        importlib.import_module(f"{node.module}.{alias.name}")
                    except ImportError:
                        errors.append(f"{node.module} has no {alias.name}")
                        continue
                imported[alias.asname or alias.name] = getattr(module, alias.name)
    for node in ast.walk(ast.parse(code)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id in imported:
            name, target = func.id, imported[func.id]
        elif isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id in imported:
            name, target = f"{func.value.id}.{func.attr}", getattr(imported[func.value.id], func.attr, None)
        else:
            continue
        if not callable(target):
            errors.append(f"{name} is not callable")
    return errors


def settings_variables() -> set[str]:
    """The ATTUNE_* names the config loader looks up, recorded while it loads an empty environment."""

    class RecordingEnviron(dict[str, str]):
        def __init__(self, **items: str) -> None:
            super().__init__(**items)
            self.asked: set[str] = set()

        def __contains__(self, key: object) -> bool:
            self.asked.add(str(key))
            return super().__contains__(key)

        def __getitem__(self, key: str) -> str:
            self.asked.add(key)
            return super().__getitem__(key)

        def get(self, key: str, default: Any = None) -> Any:
            self.asked.add(key)
            return super().get(key, default)

    environ = RecordingEnviron(HOME="/nonexistent")
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr(os, "environ", environ)  # default_home() reads os.environ itself, not from_env's mapping
        Settings.from_env().pack_cache()
    return {name for name in environ.asked if name.startswith("ATTUNE_")}


def workloads_by_name() -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in k8s_documents() if doc["kind"] in POD_TEMPLATES}


def service_selecting(workload: dict[str, Any]) -> dict[str, Any] | None:
    """The k8s Service whose selector matches the workload's pod labels."""
    labels = workload["spec"]["template"]["metadata"].get("labels", {})
    for doc in k8s_documents():
        selector = doc.get("spec", {}).get("selector") or {}
        if doc["kind"] == "Service" and selector and selector.items() <= labels.items():
            return doc
    return None


def address_problems(
    where: str, own: str, env: dict[str, str], listen: dict[str, int], hosts: dict[str, str]
) -> Iterator[str]:
    """ATTUNE_<SERVICE>_ADDRESS values whose port is not where that service listens, or whose host
    is not that service's (`own`, the container's own service, may name itself any way)."""
    for key, value in env.items():
        match = re.fullmatch(r"ATTUNE_(\w+)_ADDRESS", key)
        target = match.group(1).lower() if match else ""
        if target not in listen:
            continue
        host, port = host_port(value)
        if port != listen[target]:
            yield f"{where}: {key}={value} but {target} listens on {listen[target]}"
        if target != own and host.split(".")[0] != hosts.get(target):
            yield f"{where}: {key}={value} does not name {target}'s host {hosts.get(target)!r}"


# --- the files parse and are all deployed -------------------------------------------------------


@pytest.mark.parametrize("path", sorted(DEPLOY.rglob("*.y*ml")), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_every_yaml_file_parses_into_mappings(path: Path) -> None:
    documents = load_yaml_documents(path)
    assert documents, f"{path}: no YAML document"
    assert all(isinstance(doc, dict) for doc in documents), f"{path}: a document is not a mapping"
    if path.parent == K8S and path.name != "kustomization.yaml":
        for doc in documents:
            assert {"apiVersion", "kind", "metadata"} <= doc.keys(), f"{path}: {doc} lacks apiVersion/kind/metadata"


def test_kustomization_lists_exactly_the_manifests_present() -> None:
    present = {p.name for p in K8S.glob("*.y*ml")} - {"kustomization.yaml"}
    listed = kustomization()["resources"]
    assert len(listed) == len(set(listed)), f"a resource is listed twice: {listed}"
    assert set(listed) == present, f"listed only: {set(listed) - present}; present only: {present - set(listed)}"


# --- what the containers run ----------------------------------------------------------------------


def test_every_container_command_exists() -> None:
    problems: list[str] = []
    for c in attune_containers():
        for argv in (c.argv, *c.checks):
            for program in programs(argv):
                if program in SCRIPTS:
                    module, _, function = SCRIPTS[program].partition(":")
                    if not callable(getattr(importlib.import_module(module), function, None)):
                        problems.append(f"{c.where}: {program} → {SCRIPTS[program]} is not a function")
                elif program not in INTERPRETERS:
                    problems.append(f"{c.where}: runs {program!r}, not a console script of pyproject.toml")
            problems += [f"{c.where}: {error}" for code in python_snippets(argv) for error in import_errors(code)]
            for arguments in cli_arguments(argv):
                try:  # parse_known_args: a positional left out of `arguments` (quoted in a script) is filled
                    build_parser().parse_known_args([*arguments, "PLACEHOLDER"])
                except UsageError:
                    problems.append(f"{c.where}: `attune {' '.join(arguments)}` is not a valid CLI call")
    assert attune_containers(), "no container runs the image built from deploy/Dockerfile"
    assert not problems, "\n".join(problems)


def test_every_attune_variable_is_read_by_settings() -> None:
    known = settings_variables()
    configs = [(f"k8s {d['kind']}/{d['metadata']['name']}", config_data(d)) for d in config_documents()]
    problems = [
        f"{where}: {name} is not read by attune.config.Settings"
        for where, env in [*((c.where, c.env) for c in all_containers()), *configs]
        for name in env
        if name.startswith("ATTUNE_") and name not in known
    ]
    assert not problems, "\n".join(problems)


def test_every_setting_deploy_relies_on_for_security_is_read_by_settings() -> None:
    missing = SECURITY_VARIABLES - settings_variables()
    assert not missing, f"attune.config.Settings does not read {sorted(missing)}"


def test_every_service_runs_with_tls_as_its_own_identity() -> None:
    problems: list[str] = []
    for c in service_containers():
        settings = Settings.from_env(c.env)
        if not tls_configured(settings):
            problems.append(f"{c.where}: no TLS (ATTUNE_TLS_DIR or ATTUNE_TLS_CA/CERT/KEY)")
        if settings.insecure:
            problems.append(f"{c.where}: ATTUNE_INSECURE is set")
        if not is_loopback(c.env["ATTUNE_LISTEN_ADDRESS"]) and not tls_configured(settings):
            problems.append(f"{c.where}: listens on {c.env['ATTUNE_LISTEN_ADDRESS']} in plaintext")
        # The service's main sets its identity itself; its health probe, a CLI, reads it from here
        # to present the same certificate.
        if settings.identity != identity_of(c):
            problems.append(f"{c.where}: ATTUNE_IDENTITY={settings.identity!r}, but it runs {c.argv[0]}")
    assert service_containers(), "no service container found"
    assert not problems, "\n".join(problems)


def test_the_worker_is_given_no_platform_credentials() -> None:
    workers = [c for c in service_containers() if identity_of(c) == "worker"]
    assert {c.where.split()[0] for c in workers} == {COMPOSE_FILE.name, "k8s"}, [c.where for c in workers]
    given = {c.where: sorted(set(c.env) & set(WORKER_WITHHELD_VARIABLES)) for c in workers}
    assert not any(given.values()), f"a worker is given credentials an action could read: {given}"


def test_compose_mounts_each_service_only_its_own_credentials() -> None:
    problems: list[str] = []
    for c in service_containers():
        if not c.where.startswith(COMPOSE_FILE.name):
            continue
        tls_dir = c.env.get("ATTUNE_TLS_DIR", "")
        mounts = [m for m in c.spec.get("volumes", []) if isinstance(m, dict) and m.get("target") == tls_dir]
        subpaths = [(m.get("volume") or {}).get("subpath") for m in mounts if m.get("read_only")]
        if subpaths != [identity_of(c)]:
            problems.append(f"{c.where}: ATTUNE_TLS_DIR={tls_dir} is not a read-only mount of its own folder: {mounts}")
        for name in ("ATTUNE_ADMIN_TOKEN_FILE", "ATTUNE_SECRET_KEY_FILE"):
            if name in c.env and Path(c.env[name]).parent != Path(tls_dir):
                problems.append(f"{c.where}: {name}={c.env[name]} is not in its credentials folder {tls_dir}")
    assert not problems, "\n".join(problems)


def test_every_attune_container_environment_loads() -> None:
    for c in attune_containers():
        try:
            Settings.from_env(c.env)
        except ConfigError as err:  # it names the variable holding a value of the wrong type
            pytest.fail(f"{c.where}: {err}")


# --- ports --------------------------------------------------------------------------------------


def test_compose_ports_agree() -> None:
    containers = {c.workload: c for c in compose_containers()}
    listen = {name: listen_port(c) for name, c in containers.items() if "ATTUNE_LISTEN_ADDRESS" in c.env}
    assert set(listen) == SERVICES, f"compose services that listen: {sorted(listen)}, expected {sorted(SERVICES)}"
    problems: list[str] = []
    for name, c in containers.items():
        problems += address_problems(c.where, name, c.env, listen, {s: s for s in SERVICES})
        for host, port in re.findall(r"--address\s+([\w.-]+):(\d+)", " ".join(c.argv)):
            if host in listen and int(port) != listen[host]:
                problems.append(f"{c.where}: --address {host}:{port} but {host} listens on {listen[host]}")
        if name not in listen:
            continue
        probed = {int(port) for check in c.checks for port in LOCAL_PORT.findall(" ".join(check))}
        if probed != {listen[name]}:
            problems.append(f"{c.where}: listens on {listen[name]} but its healthcheck probes {sorted(probed)}")
        for mapping in c.spec.get("ports", []):
            if int(str(mapping).rsplit(":", 1)[-1]) != listen[name]:
                problems.append(f"{c.where}: publishes {mapping} but listens on {listen[name]}")
    exposed = {int(port) for keyword, args in dockerfile() if keyword == "EXPOSE" for port in args.split()}
    serving = {
        *listen.values(),
        *(console_port(c) for c in console_containers() if c.where.startswith(COMPOSE_FILE.name)),
    }
    if exposed != serving:
        problems.append(f"Dockerfile EXPOSE {sorted(exposed)} but the services listen on {sorted(serving)}")
    assert not problems, "\n".join(problems)


def test_k8s_ports_agree() -> None:
    workloads = workloads_by_name()
    listen = {c.workload: listen_port(c) for c in k8s_containers() if "ATTUNE_LISTEN_ADDRESS" in c.env}
    assert set(listen) == SERVICES, f"k8s workloads that listen: {sorted(listen)}, expected {sorted(SERVICES)}"
    services = {name: service_selecting(workloads[name]) for name in listen}
    problems = [f"k8s {name}: no Service selects its pods" for name, service in services.items() if service is None]
    hosts = {name: service["metadata"]["name"] for name, service in services.items() if service}
    for c in k8s_containers():
        problems += address_problems(c.where, c.workload, c.env, listen, hosts)
        if "ATTUNE_LISTEN_ADDRESS" not in c.env:  # an init container: it neither listens nor is probed
            continue
        port, spec = listen[c.workload], c.spec
        named = {p.get("name"): p["containerPort"] for p in spec.get("ports", [])}
        if port not in named.values():
            problems.append(f"{c.where}: listens on {port} but declares containerPorts {sorted(named.values())}")
        probes = k8s_probe_ports(spec)
        if "readinessProbe" not in probes or any(ports != {port} for ports in probes.values()):
            problems.append(f"{c.where}: listens on {port} but its probes check {probes}")
        for service_port in (services[c.workload] or {}).get("spec", {}).get("ports", []):
            target = named.get(service_port["targetPort"], service_port["targetPort"])
            if service_port["port"] != port or target != port:
                maps = f"{service_port['port']} → {service_port['targetPort']}"
                problems.append(f"{c.where}: listens on {port} but its Service maps {maps}")
    assert not problems, "\n".join(problems)


def test_only_a_service_that_does_not_answer_is_restarted() -> None:
    """k8s readiness probes run `attune health` (SERVING: a service whose database is away or not
    migrated leaves its Service); startup and liveness probes run `attune health --live`, which
    passes whenever the service answers, so a database outage does not restart every pod. Compose
    healthchecks are readiness checks (`depends_on: service_healthy`; Docker restarts nothing for
    them). Each command is parsed by the CLI's own parser, so the flag it names exists."""
    parser = build_parser()
    problems: list[str] = []
    checks = [
        (c, kind, list((c.spec.get(kind) or {}).get("exec", {}).get("command", [])))
        for c in k8s_containers()
        for kind in PROBES
    ]
    checks += [(c, "healthcheck", list(check)) for c in compose_containers() for check in c.checks]
    for c, kind, command in checks:
        if "ATTUNE_LISTEN_ADDRESS" not in c.env:  # postgres, an init container: no Attune server
            continue
        if command[:2] != ["attune", "health"]:
            problems.append(f"{c.where}: {kind} runs {command}, not `attune health`")
            continue
        live = bool(parser.parse_args(command[1:]).live)
        if live != (kind in ("livenessProbe", "startupProbe")):
            problems.append(f"{c.where}: {kind} runs `{' '.join(command)}`")
    assert not problems, "\n".join(problems)


# --- telemetry and the image --------------------------------------------------------------------


def test_otel_collector_receives_otlp_grpc_where_the_services_export_traces() -> None:
    collector = yaml.safe_load(COLLECTOR_FILE.read_text())
    sections = {section: collector.get(section) or {} for section in ("receivers", "processors", "exporters")}
    pipelines = collector["service"]["pipelines"]
    traces = [p for name, p in pipelines.items() if name == "traces" or name.startswith("traces/")]
    assert traces, f"{COLLECTOR_FILE.name}: no traces pipeline"
    for name, pipeline in pipelines.items():
        for section, components in sections.items():
            missing = set(pipeline.get(section, [])) - components.keys()
            assert not missing, f"{COLLECTOR_FILE.name}: pipeline {name} uses undefined {section} {missing}"
    grpc_ports = {
        host_port(sections["receivers"][r]["protocols"]["grpc"]["endpoint"])[1]
        for p in traces
        for r in p["receivers"]
        if r.split("/")[0] == "otlp" and "grpc" in (sections["receivers"][r].get("protocols") or {})
    }
    assert grpc_ports, f"{COLLECTOR_FILE.name}: no traces pipeline receives OTLP over gRPC"
    endpoints = {c.where: c.env[OTLP_ENDPOINT] for c in all_containers() if OTLP_ENDPOINT in c.env}
    assert endpoints, "no container exports traces"
    wrong = {where: e for where, e in endpoints.items() if host_port(e)[1] not in grpc_ports}
    assert not wrong, f"OTLP endpoints not on the collector's gRPC port {grpc_ports}: {wrong}"
    # In compose the endpoint's host is the collector service, started with this very file.
    services = compose()["services"]
    for where, endpoint in endpoints.items():
        if where.startswith(COMPOSE_FILE.name):
            host = host_port(endpoint)[0]
            assert host in services, f"{where}: {OTLP_ENDPOINT} host {host!r} is not a compose service"
            volumes = [volume.split(":") for volume in services[host].get("volumes", [])]
            mounts = {target for source, target, *_ in volumes if (DEPLOY / source).resolve() == COLLECTOR_FILE}
            config = [arg.split("=", 1)[1] for arg in services[host].get("command", []) if arg.startswith("--config=")]
            assert config and config[0] in mounts, f"{host}: --config={config} but {COLLECTOR_FILE.name} is at {mounts}"


def test_compose_builds_the_image_from_the_repo_root() -> None:
    for name, service in compose()["services"].items():
        if "build" in service:
            context = (DEPLOY / service["build"]["context"]).resolve()
            assert context == ROOT, f"compose service {name}: build context {context}, not the repository"
            dockerfile_path = (context / service["build"]["dockerfile"]).resolve()
            assert dockerfile_path == DEPLOY / "Dockerfile", f"compose service {name} builds {dockerfile_path}"


def test_dockerfile_installs_the_package_on_a_supported_python() -> None:
    instructions = dockerfile()
    stages = {args.split()[-1] for keyword, args in instructions if keyword == "FROM" and " AS " in args.upper()}
    minimum = tuple(int(n) for n in re.findall(r"\d+", PYPROJECT["project"]["requires-python"])[:2])
    for keyword, args in instructions:
        if keyword == "FROM" and args.split()[0] not in stages:
            match = re.fullmatch(r"python:(\d+)\.(\d+)\S*", args.split()[0])
            assert match, f"Dockerfile: FROM {args} is not a python image"
            assert tuple(map(int, match.groups())) >= minimum, f"Dockerfile: FROM {args}, but requires-python {minimum}"
    copies = [args.split()[:-1] for keyword, args in instructions if keyword == "COPY" and "--from" not in args]
    copied = [source for sources in copies for source in sources]
    absent = [source for source in copied if not (ROOT / source).exists()]
    assert not absent, f"Dockerfile copies what the repository lacks: {absent}"
    # What setuptools reads to build the package here: the project files and every package root.
    package_roots = {path.split("/")[0] for path in PYPROJECT["tool"]["setuptools"]["package-dir"].values()}
    needed = {"pyproject.toml", "setup.py", PYPROJECT["project"]["readme"], *package_roots}
    missing = {name for name in needed if (ROOT / name).exists()} - {Path(source).name for source in copied}
    assert not missing, f"Dockerfile does not copy {missing}: the image would be built unlike `pip install .` here"
    pip_install_here = re.compile(r"\bpip install\b.*\s\.(\s|$)")
    installs = [args for keyword, args in instructions if keyword == "RUN" and pip_install_here.search(args)]
    assert installs, "Dockerfile: no `pip install .` of the repository"


# --- the web console ------------------------------------------------------------------------------


def console_containers() -> list[Container]:
    """The containers that run the web console (`attune-console`)."""
    return [c for c in attune_containers() if c.argv[:1] == ("attune-console",)]


def console_port(c: Container) -> int:
    return host_port(c.env["ATTUNE_CONSOLE_ADDRESS"])[1]


def test_compose_and_k8s_run_the_console_as_a_client_without_credentials_of_its_own() -> None:
    """The console presents the client certificate (its TLS folder or Secret holds exactly ca.pem,
    cli.pem and cli.key), reaches the scheduler where it listens, and is given no token, database
    URL or sealing key: each user signs in with their own token (docs/console.md)."""
    consoles = console_containers()
    assert {c.where.split()[0] for c in consoles} == {COMPOSE_FILE.name, "k8s"}, [c.where for c in consoles]
    scheduler_ports = {listen_port(c) for c in service_containers() if identity_of(c) == "scheduler"}
    withheld = {"ATTUNE_DATABASE_URL", "ATTUNE_ADMIN_TOKEN_FILE", "ATTUNE_SECRET_KEY", "ATTUNE_SECRET_KEY_FILE"}
    problems: list[str] = []
    for c in consoles:
        settings = Settings.from_env(c.env)
        if not tls_configured(settings) or settings.identity != "cli":
            problems.append(f"{c.where}: must call the scheduler over TLS with the cli certificate")
        if given := sorted(withheld & set(c.env)):
            problems.append(f"{c.where}: is given {given}")
        host, port = host_port(settings.scheduler_address)
        if port not in scheduler_ports or host.split(".")[0] != "scheduler":
            problems.append(f"{c.where}: ATTUNE_SCHEDULER_ADDRESS={settings.scheduler_address} is not the scheduler")
        if c.where.startswith(COMPOSE_FILE.name):
            mounts = [
                m for m in c.spec.get("volumes", []) if isinstance(m, dict) and m.get("target") == settings.tls_dir
            ]
            if [(m.get("volume") or {}).get("subpath") for m in mounts if m.get("read_only")] != [CONSOLE]:
                problems.append(f"{c.where}: ATTUNE_TLS_DIR is not a read-only mount of the console folder: {mounts}")
            init = " ".join(compose()["services"]["tls-init"]["command"])
            if f"cp all/ca.pem all/cli.pem all/cli.key {CONSOLE}/" not in init:
                problems.append("tls-init does not give the console folder exactly the client certificate")
        else:
            workload = workloads_by_name()[c.workload]
            volumes = {v["name"]: v for v in workload["spec"]["template"]["spec"]["volumes"]}
            (tls,) = [m for m in c.spec["volumeMounts"] if m["mountPath"] == settings.tls_dir]
            secret = volumes[tls["name"]]["secret"]["secretName"]
            files = {e["name"]: generator_files(e) for e in kustomization()["secretGenerator"]}.get(secret, {})
            if set(files) != {"ca.pem", "cli.pem", "cli.key"} or not tls.get("readOnly"):
                problems.append(f"{c.where}: its TLS Secret {secret} holds {sorted(files)}, not the client certificate")
    assert not problems, "\n".join(problems)


def test_the_console_is_probed_and_published_where_it_listens() -> None:
    problems: list[str] = []
    for c in console_containers():
        port = console_port(c)
        if c.where.startswith(COMPOSE_FILE.name):
            checked = {int(p) for check in c.checks for p in LOCAL_PORT.findall(" ".join(check))}
            if checked != {port} or not any("/healthz" in " ".join(check) for check in c.checks):
                problems.append(f"{c.where}: listens on {port} but its healthcheck is {c.checks}")
            published = {int(str(m).rsplit(":", 1)[-1]) for m in c.spec.get("ports", [])}
            if published != {port}:
                problems.append(f"{c.where}: listens on {port} but publishes {c.spec.get('ports')}")
            continue
        probes = {kind: (c.spec.get(kind) or {}).get("httpGet") for kind in PROBES if c.spec.get(kind)}
        if "readinessProbe" not in probes or any(p != {"path": "/healthz", "port": port} for p in probes.values()):
            problems.append(f"{c.where}: listens on {port} but its probes are {probes}")
        named = {p["name"]: p["containerPort"] for p in c.spec.get("ports", [])}
        service = service_selecting(workloads_by_name()[c.workload])
        maps = [
            (p["port"], named.get(p["targetPort"], p["targetPort"]))
            for p in (service or {"spec": {}})["spec"].get("ports", [])
        ]
        if maps != [(port, port)]:
            problems.append(f"{c.where}: listens on {port} but its Service maps {maps}")
    assert console_containers(), "no container runs attune-console"
    assert not problems, "\n".join(problems)
