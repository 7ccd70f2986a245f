"""Loading a pack: read every file, check every definition, refuse the pack if anything is wrong.

The checks run on the pack's files in memory (:func:`load_pack_files`), so the scheduler can
validate a pack that arrived over gRPC exactly as the CLI validates a folder on disk.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from attune.packs._actions import ActionReader
from attune.packs._errors import PackError, PackProblem
from attune.packs._model import ActionDefinition, PackBundle, pack_digest
from attune.packs._workflows import STANDALONE_SUFFIXES, check_workflow_file, more_workflow_findings, read_standalone
from attune.packs._yaml import YamlProblem, load_yaml
from attune.packs.parameters import describe_value

__all__ = ["bundled_pack_path", "load_pack", "load_pack_files", "read_pack_files"]

PACK_FILE = "pack.yaml"
_PACK_REF = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]*$")
_PACK_FIELDS = ("ref", "label", "version", "description", "author", "email", "keywords", "homepage", "license")
_BUNDLED = Path(__file__).resolve().parent / "bundled"
_SKIPPED_NAMES = ("__pycache__", "node_modules")


def bundled_pack_path(name: str) -> Path:
    """The folder of a pack shipped with Attune: ``"core"`` or ``"examples"``."""
    path = _BUNDLED / name
    if not (path / PACK_FILE).is_file():
        available = sorted(p.name for p in _BUNDLED.iterdir() if (p / PACK_FILE).is_file())
        raise ValueError(f"no bundled pack {name!r} (bundled: {', '.join(available)})")
    return path


def load_pack(path: Path, *, known_action_refs: Collection[str] = ()) -> PackBundle:
    """Read and validate the pack in folder ``path``; raise :class:`PackError` listing every problem.

    ``known_action_refs`` are the actions already registered: workflow tasks may call those and
    any action of this pack.
    """
    return load_pack_files(read_pack_files(Path(path)), known_action_refs=known_action_refs)


def read_pack_files(path: Path) -> dict[str, bytes]:
    """Every file under ``path`` by pack-relative posix path (hidden files and caches skipped)."""
    if not path.is_dir():
        raise PackError([PackProblem(str(path), "", "not a pack folder (no such directory)")])
    files: dict[str, bytes] = {}
    for file in sorted(path.rglob("*")):
        relative = file.relative_to(path)
        if any(part.startswith(".") or part in _SKIPPED_NAMES for part in relative.parts):
            continue
        if file.suffix == ".pyc" or not file.is_file():
            continue
        files[relative.as_posix()] = file.read_bytes()
    return files


def load_pack_files(files: Mapping[str, bytes], *, known_action_refs: Collection[str] = ()) -> PackBundle:
    """Validate a pack given as its files; see :func:`load_pack`."""
    problems: list[PackProblem] = []
    meta = _read_pack_yaml(files, problems)
    pack_ref = meta.get("ref")
    reader = ActionReader(files, pack_ref, problems)
    declared: list[tuple[str, ActionDefinition]] = []  # (declaring file, action)
    refused_workflows: list[str] = []
    for file in _top_level(files, "actions", (".yaml", ".yml")):
        action = reader.read(file)
        if action is not None:
            declared.append((file, action))
    for file in _top_level(files, "workflows", (".yaml", ".yml")):
        if not file.endswith(STANDALONE_SUFFIXES):
            problems.append(PackProblem(file, "", "a standalone workflow file must be named <name>.workflow.yaml"))
            continue
        action = read_standalone(file, files[file], reader, problems)
        if action is not None:
            declared.append((file, action))
        else:
            refused_workflows.append(file)
    _check_unique_refs(declared, problems)
    known = set(known_action_refs) | {action.ref for _, action in declared}
    for file, action in declared:
        if action.workflow_source is not None:
            linked = action.workflow_source != file  # named by an action file's workflow_file
            problems += check_workflow_file(action, _raw_parameters(files[file]) if linked else None, known)
    for file in refused_workflows:  # the engine's findings too, so one round shows everything
        problems += more_workflow_findings(file, files[file], known, problems)
    actions = sorted((action for _, action in declared), key=lambda a: a.ref)
    if problems:
        raise PackError(problems)
    return PackBundle(
        ref=meta["ref"],
        label=meta["label"],
        version=meta["version"],
        description=meta["description"],
        actions=actions,
        files=dict(files),
        digest=pack_digest(files),
    )


def _read_pack_yaml(files: Mapping[str, bytes], problems: list[PackProblem]) -> dict[str, Any]:
    """pack.yaml's ref, label, version and description; whatever is wrong goes to ``problems``."""
    if PACK_FILE not in files:
        problems.append(PackProblem(PACK_FILE, "", "missing; every pack needs a pack.yaml with ref and version"))
        return {}
    try:
        doc = load_yaml(files[PACK_FILE])
    except YamlProblem as err:
        problems.append(PackProblem(PACK_FILE, "", str(err)))
        return {}
    if not isinstance(doc, Mapping):
        problems.append(PackProblem(PACK_FILE, "", f"must be a YAML mapping, got {describe_value(doc)}"))
        return {}
    for key in doc:
        if key not in _PACK_FIELDS:
            problems.append(PackProblem(PACK_FILE, str(key), f"unknown field (allowed: {', '.join(_PACK_FIELDS)})"))
    meta: dict[str, Any] = {}
    ref = doc.get("ref")
    if not isinstance(ref, str) or not _PACK_REF.match(ref):
        problems.append(PackProblem(PACK_FILE, "ref", "missing or invalid; letters, digits, _ and - (e.g. my_pack)"))
    else:
        meta["ref"] = ref
    version = doc.get("version")
    if not isinstance(version, str) or not version:
        hint = "; quote it" if isinstance(version, (int, float)) else ""
        problems.append(PackProblem(PACK_FILE, "version", f'must be a string such as "1.0.0"{hint}'))
    meta["version"] = version
    for field, default in (("label", ref), ("description", "")):
        value = doc.get(field, default)
        if not isinstance(value, str):
            problems.append(PackProblem(PACK_FILE, field, f"must be a string, got {describe_value(value)}"))
        meta[field] = value
    return meta


def _top_level(files: Mapping[str, bytes], folder: str, suffixes: tuple[str, ...]) -> list[str]:
    """Files directly inside ``folder`` (not in its subfolders) with one of ``suffixes``."""
    return sorted(path for path in files if posixpath.dirname(path) == folder and path.endswith(suffixes))


def _raw_parameters(data: bytes) -> Any:
    doc = load_yaml(data)  # already parsed once without error
    return doc.get("parameters") if isinstance(doc, Mapping) else None


def _check_unique_refs(declared: list[tuple[str, ActionDefinition]], problems: list[PackProblem]) -> None:
    first: dict[str, str] = {}
    for file, action in declared:
        if action.ref in first:
            problems.append(PackProblem(file, "ref", f"{action.ref!r} is already declared by {first[action.ref]}"))
        else:
            first[action.ref] = file
