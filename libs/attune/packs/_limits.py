"""What a pack may be: its size, its files and their paths, the YAML in them, the names it declares.

:func:`check_upload` is the first check of a pack, before any file is parsed: the registry runs it
on the request as received (so a duplicate path is seen too), whatever client sent it. A path must
stay inside the pack on any system that writes it out: relative, ``/``-separated, no empty, ``.``
or ``..`` segment, no backslash, NUL or other control character.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from attune.config import Settings
from attune.packs._errors import PackProblem
from attune.packs._yaml import YamlLimits

__all__ = [
    "DEFAULT_LIMITS",
    "NAME_COLUMN_WIDTH",
    "TASK_NAME_MAX_LENGTH",
    "VERSION_MAX_LENGTH",
    "PackLimits",
    "check_upload",
    "file_too_large",
    "shown_text",
    "text_problem",
    "too_many_bytes",
    "too_many_files",
    "upload_size",
]

#: The width of the registry's ``packs.version`` column (`attune.storage.schema`).
VERSION_MAX_LENGTH = 64
#: The width of the columns refs are stored in: a longer ATTUNE_MAX_NAME_LENGTH cannot be honoured.
NAME_COLUMN_WIDTH = 255
#: A workflow task's name is part of the request_id of each execution its runs start
#: (``<workflow id>:<task>/<run>/<item>/<attempt>``), which must fit in 255 characters.
TASK_NAME_MAX_LENGTH = 128
_SHOWN_MAX = 80


@dataclass(frozen=True, kw_only=True)
class PackLimits:
    """Every limit a pack is checked against; :meth:`from_settings` reads them from the settings."""

    max_bytes: int
    max_files: int
    max_file_bytes: int
    max_path_length: int
    max_name_length: int
    yaml: YamlLimits

    @classmethod
    def from_settings(cls, settings: Settings) -> PackLimits:
        """The ATTUNE_MAX_PACK_*, ATTUNE_MAX_YAML_* and ATTUNE_MAX_NAME_LENGTH settings (the last
        capped at the columns' width)."""
        return cls(
            max_bytes=settings.max_pack_bytes,
            max_files=settings.max_pack_files,
            max_file_bytes=settings.max_pack_file_bytes,
            max_path_length=settings.max_pack_path_length,
            max_name_length=min(settings.max_name_length, NAME_COLUMN_WIDTH),
            yaml=YamlLimits(
                max_bytes=settings.max_yaml_bytes,
                max_aliases=settings.max_yaml_aliases,
                max_nodes=settings.max_yaml_nodes,
                max_depth=settings.max_yaml_depth,
            ),
        )


#: The limits of a default configuration (for callers without settings, such as tests and tools).
DEFAULT_LIMITS = PackLimits.from_settings(Settings())


def check_upload(files: Sequence[tuple[str, bytes]], limits: PackLimits) -> list[PackProblem]:
    """Problems with a pack's files as uploaded, ``(path, content)`` in request order: their
    number and total size (reported alone: nothing else is looked at then), each path, each size.
    A problem with the whole pack has ``file`` ``""``."""
    if len(files) > limits.max_files:
        return [too_many_files(len(files), limits)]
    total = sum(upload_size(path, content) for path, content in files)
    if total > limits.max_bytes:
        return [too_many_bytes(total, limits)]
    problems: list[PackProblem] = []
    seen: set[str] = set()
    for path, content in files:
        wrong = _path_problem(path, limits.max_path_length)
        if wrong:
            problems.append(PackProblem(shown_text(path), "", wrong))
        elif path in seen:
            problems.append(PackProblem(path, "", "sent twice; each path names one file"))
        if len(content) > limits.max_file_bytes:
            problems.append(file_too_large(path, len(content), limits))
        seen.add(path)
    folders = {path.rsplit("/", i)[0] for path in seen for i in range(1, path.count("/") + 1)}
    problems += [PackProblem(path, "", "is both a file and a folder of the pack") for path in sorted(seen & folders)]
    return problems


def upload_size(path: str, content: bytes) -> int:
    """What one file adds to a pack's size (ATTUNE_MAX_PACK_BYTES): its path and its content."""
    return len(path.encode("utf-8", "surrogatepass")) + len(content)


def too_many_files(count: int, limits: PackLimits, *, at_least: bool = False) -> PackProblem:
    """The problem of a pack of ``count`` files (``at_least``: counting stopped there) over the limit."""
    more = "more than " if at_least else ""
    counted = limits.max_files if at_least else count
    message = f"{more}{counted:,} files, over the limit of {limits.max_files:,} files per pack (ATTUNE_MAX_PACK_FILES)"
    return PackProblem("", "", message)


def too_many_bytes(total: int, limits: PackLimits, *, at_least: bool = False) -> PackProblem:
    """The problem of a pack of ``total`` bytes (``at_least``: counting stopped there) over the limit."""
    more = "more than " if at_least else ""
    counted = limits.max_bytes if at_least else total
    message = (
        f"{more}{counted:,} bytes of files and paths, over the limit of {limits.max_bytes:,} (ATTUNE_MAX_PACK_BYTES)"
    )
    return PackProblem("", "", message)


def file_too_large(path: str, size: int, limits: PackLimits) -> PackProblem:
    """The problem of one file of ``size`` bytes over the per-file limit."""
    message = f"{size:,} bytes, over the limit of {limits.max_file_bytes:,} bytes per file (ATTUNE_MAX_PACK_FILE_BYTES)"
    return PackProblem(shown_text(path), "", message)


def _path_problem(path: str, max_length: int) -> str:
    """What is wrong with a pack-relative path, or ``""``."""
    if not path:
        return "a file without a path"
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return "is not UTF-8 text"
    if len(path) > max_length:
        return f"{len(path):,} characters, over the limit of {max_length:,} for a path (ATTUNE_MAX_PACK_PATH_LENGTH)"
    if path.startswith("/"):
        return "an absolute path; a pack's paths are relative to its folder"
    if "\\" in path:
        return "contains a backslash; a pack's paths separate folders with /"
    if "\0" in path:
        return "contains a NUL character"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in path):
        return "contains a control character"
    segments = path.split("/")
    if ".." in segments:
        return "has a .. segment, which would leave the pack"
    if "." in segments or "" in segments:
        return "has an empty or . segment (//, /./ or a / at the end); name each file by one plain path"
    return ""


def shown_text(text: str) -> str:
    """A client's path or name as an error shows it: control characters escaped, cut when long."""
    if not text:
        return "(empty)"
    shown = "".join(f"\\x{ord(c):02x}" if ord(c) < 0x20 or ord(c) == 0x7F else c for c in text)
    if len(shown) > _SHOWN_MAX:
        return f"{shown[:_SHOWN_MAX]}… ({len(text):,} characters)"
    return shown


def text_problem(value: str, max_length: int | None = None, setting: str = "ATTUNE_MAX_NAME_LENGTH") -> str:
    """What keeps a declared text (a ref, a label) from being stored, or ``""``: a NUL character,
    which PostgreSQL's text cannot hold, or more than ``max_length`` characters."""
    if max_length is not None and len(value) > max_length:
        return f"{len(value):,} characters, over the limit of {max_length:,} ({setting})"
    if "\0" in value:
        return "contains a NUL character, which cannot be stored"
    return ""
