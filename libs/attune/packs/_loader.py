"""Loading a pack: read every file, check every definition, refuse the pack if anything is wrong.

The checks run on the pack's files in memory (:func:`load_pack_files`), so the scheduler can
validate a pack that arrived over gRPC exactly as the CLI validates a folder on disk.
"""

from __future__ import annotations

import os
import posixpath
import re
import stat
from collections.abc import Callable, Collection, Iterator, Mapping
from pathlib import Path
from typing import Any

from attune.packs._actions import ActionReader
from attune.packs._errors import PackError, PackProblem
from attune.packs._limits import (
    DEFAULT_LIMITS,
    VERSION_MAX_LENGTH,
    PackLimits,
    check_upload,
    file_too_large,
    shown_text,
    text_problem,
    too_many_bytes,
    too_many_files,
    upload_size,
)
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
_SPECIAL_KINDS: tuple[tuple[Callable[[int], bool], str], ...] = (
    (stat.S_ISFIFO, "fifo"),
    (stat.S_ISSOCK, "socket"),
    (stat.S_ISCHR, "character device"),
    (stat.S_ISBLK, "block device"),
)


def bundled_pack_path(name: str) -> Path:
    """The folder of a pack shipped with Attune: ``"core"`` or ``"examples"``."""
    path = _BUNDLED / name
    if not (path / PACK_FILE).is_file():
        available = sorted(p.name for p in _BUNDLED.iterdir() if (p / PACK_FILE).is_file())
        raise ValueError(f"no bundled pack {name!r} (bundled: {', '.join(available)})")
    return path


def load_pack(
    path: Path, *, known_action_refs: Collection[str] = (), limits: PackLimits = DEFAULT_LIMITS
) -> PackBundle:
    """Read and validate the pack in folder ``path``; raise :class:`PackError` listing every problem.

    ``known_action_refs`` are the actions already registered: workflow tasks may call those and
    any action of this pack.
    """
    return load_pack_files(read_pack_files(Path(path)), known_action_refs=known_action_refs, limits=limits)


def read_pack_files(path: Path, limits: PackLimits = DEFAULT_LIMITS) -> dict[str, bytes]:
    """Every file under ``path`` by pack-relative posix path (hidden files and caches skipped).

    Only regular files are read: a symbolic link (whether it points inside the pack or out of it)
    or a special file (fifo, socket, device) refuses the pack, naming it. The pack is uploaded as
    its files' contents, so a link would not stay a link; and a link leaving the pack would upload
    whatever it points to, for anyone allowed to fetch the pack's files. Reading stops at the
    first file beyond ``limits`` in number or total size, so a wrong folder is not read whole.
    """
    if not path.is_dir():
        raise PackError([PackProblem(str(path), "", "not a pack folder (no such directory)")])
    files: dict[str, bytes] = {}
    problems: list[PackProblem] = []
    total = 0
    for relative, entry in _pack_entries(path):
        if entry.name.endswith(".pyc") and entry.is_file(follow_symlinks=False):
            continue
        wrong = _not_regular(relative, entry)
        if wrong is not None:
            problems.append(wrong)
            continue
        content = _read_regular(Path(entry.path), relative, limits, problems)
        if content is None:
            continue
        files[relative] = content
        total += upload_size(relative, content)
        if len(files) > limits.max_files:
            raise PackError([too_many_files(len(files), limits, at_least=True)])
        if total > limits.max_bytes:
            raise PackError([too_many_bytes(total, limits, at_least=True)])
    problems += check_upload(list(files.items()), limits)
    if problems:
        raise PackError(problems)
    return dict(sorted(files.items()))


def _pack_entries(root: Path) -> Iterator[tuple[str, os.DirEntry[str]]]:
    """Every entry below ``root`` but folders, by relative path; hidden names and caches skipped.
    Folders are entered only when they are real folders, never through a link."""
    pending = [""]
    while pending:
        folder = pending.pop()
        with os.scandir(root / folder) as listing:
            entries = sorted(listing, key=lambda e: e.name, reverse=True)
        for entry in entries:
            if entry.name.startswith(".") or entry.name in _SKIPPED_NAMES:
                continue
            relative = f"{folder}/{entry.name}" if folder else entry.name
            if entry.is_dir(follow_symlinks=False):
                pending.append(relative)
            else:
                yield relative, entry


def _not_regular(relative: str, entry: os.DirEntry[str]) -> PackProblem | None:
    """The problem with an entry that is not a regular file with a UTF-8 name, else None."""
    shown = shown_text(os.fsencode(relative).decode("utf-8", "backslashreplace"))
    try:
        relative.encode("utf-8")
    except UnicodeEncodeError:
        return PackProblem(shown, "", "the file name is not UTF-8; rename the file")
    if entry.is_symlink():
        target = os.readlink(entry.path)
        return PackProblem(
            shown, "", f"is a symbolic link (to {target}); a pack holds regular files only, so copy the file in"
        )
    if entry.is_file(follow_symlinks=False):
        return None
    mode = entry.stat(follow_symlinks=False).st_mode
    kind = next((name for test, name in _SPECIAL_KINDS if test(mode)), "special file")
    return PackProblem(shown, "", f"is a {kind}, not a regular file; a pack holds regular files only")


def _read_regular(file: Path, relative: str, limits: PackLimits, problems: list[PackProblem]) -> bytes | None:
    """The content of a regular file, or None after adding a problem (too large, or replaced by
    something else since it was listed: it is opened without following a link or waiting on a fifo)."""
    try:
        fd = os.open(file, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as err:
        problems.append(PackProblem(relative, "", f"cannot be read: {err.strerror}"))
        return None
    with os.fdopen(fd, "rb") as stream:
        status = os.fstat(stream.fileno())
        if not stat.S_ISREG(status.st_mode):
            problems.append(PackProblem(relative, "", "is no longer a regular file"))
            return None
        if status.st_size > limits.max_file_bytes:  # not read at all
            problems.append(file_too_large(relative, status.st_size, limits))
            return None
        return stream.read()


def load_pack_files(
    files: Mapping[str, bytes], *, known_action_refs: Collection[str] = (), limits: PackLimits = DEFAULT_LIMITS
) -> PackBundle:
    """Validate a pack given as its files; see :func:`load_pack`. A pack beyond ``limits`` in
    size, file count or paths is refused before any file is parsed."""
    problems = check_upload(list(files.items()), limits)
    if problems:
        raise PackError(problems)
    meta = _read_pack_yaml(files, problems, limits)
    pack_ref = meta.get("ref")
    reader = ActionReader(files, pack_ref, problems, limits)
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
            raw_parameters = _raw_parameters(files[file], limits) if linked else None
            problems += check_workflow_file(action, raw_parameters, known, limits)
    for file in refused_workflows:  # the engine's findings too, so one round shows everything
        problems += more_workflow_findings(file, files[file], known, problems, limits)
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


def _read_pack_yaml(files: Mapping[str, bytes], problems: list[PackProblem], limits: PackLimits) -> dict[str, Any]:
    """pack.yaml's ref, label, version and description; whatever is wrong goes to ``problems``."""
    if PACK_FILE not in files:
        problems.append(PackProblem(PACK_FILE, "", "missing; every pack needs a pack.yaml with ref and version"))
        return {}
    try:
        doc = load_yaml(files[PACK_FILE], limits.yaml)
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
    elif too_long := text_problem(ref, limits.max_name_length):
        problems.append(PackProblem(PACK_FILE, "ref", too_long))
    else:
        meta["ref"] = ref
    version = doc.get("version")
    if not isinstance(version, str) or not version:
        hint = "; quote it" if isinstance(version, (int, float)) else ""
        problems.append(PackProblem(PACK_FILE, "version", f'must be a string such as "1.0.0"{hint}'))
    elif wrong := text_problem(version, VERSION_MAX_LENGTH, setting="the registry's column width"):
        problems.append(PackProblem(PACK_FILE, "version", wrong))
    meta["version"] = version
    for field, default in (("label", ref), ("description", "")):
        value = doc.get(field, default)
        if not isinstance(value, str):
            problems.append(PackProblem(PACK_FILE, field, f"must be a string, got {describe_value(value)}"))
        elif wrong := text_problem(value):
            problems.append(PackProblem(PACK_FILE, field, wrong))
        meta[field] = value
    return meta


def _top_level(files: Mapping[str, bytes], folder: str, suffixes: tuple[str, ...]) -> list[str]:
    """Files directly inside ``folder`` (not in its subfolders) with one of ``suffixes``."""
    return sorted(path for path in files if posixpath.dirname(path) == folder and path.endswith(suffixes))


def _raw_parameters(data: bytes, limits: PackLimits) -> Any:
    doc = load_yaml(data, limits.yaml)  # already parsed once without error
    return doc.get("parameters") if isinstance(doc, Mapping) else None


def _check_unique_refs(declared: list[tuple[str, ActionDefinition]], problems: list[PackProblem]) -> None:
    first: dict[str, str] = {}
    for file, action in declared:
        if action.ref in first:
            problems.append(PackProblem(file, "ref", f"{action.ref!r} is already declared by {first[action.ref]}"))
        else:
            first[action.ref] = file
