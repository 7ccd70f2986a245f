"""Reading a workflow document: YAML text or a mapping in, JSON data within bounds out.

The registry bounds a pack's YAML before the engine sees it (``attune.packs``), but the engine
walks every document itself — template checks, the compiled form's digest (JSON text) — so it
holds any document to bounds those walks can take: at most ``MAX_DEPTH`` levels of nesting and
``MAX_VALUES`` values once YAML aliases are expanded (a "billion laughs" is refused, not walked),
with string keys and JSON values only. YAML is read as JSON data: timestamps stay strings, and
``!!binary`` and ``!!set`` are refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import compress
from typing import Any

import yaml

from ._data import kind_of
from .errors import SpecError, WorkflowSpecError

__all__ = ["MAX_DEPTH", "MAX_VALUES", "load_document"]

#: Lists and mappings nested in a workflow document.
MAX_DEPTH = 100
#: Values (keys included) in a workflow document, its YAML aliases expanded.
MAX_VALUES = 1_000_000
# Integers beyond Python's limit for writing them as text (4,300 digits) cannot be JSON.
_MAX_INT_BITS = 14_000
_PLAIN = frozenset({str, int, float, bool, type(None), dict, list})
_CONTAINERS = frozenset({dict, list})
_IS_STR = frozenset({str}).__contains__
_IS_INT = frozenset({int}).__contains__


class _DataLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]  # picked at import
    """A safe loader that builds JSON data only."""


# Timestamps stay the strings they were written as; binary and sets are not JSON.
_DataLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _not_data(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    raise yaml.constructor.ConstructorError(None, None, f"{node.tag} is not JSON data", node.start_mark)


_DataLoader.add_constructor("tag:yaml.org,2002:timestamp", yaml.SafeLoader.construct_yaml_str)
for _tag in ("binary", "set", "omap", "pairs"):
    _DataLoader.add_constructor(f"tag:yaml.org,2002:{_tag}", _not_data)


def load_document(document: Mapping[str, Any] | str, source: str) -> dict[str, Any]:
    """The document as a dict of JSON data; raises WorkflowSpecError when it is not one."""
    if isinstance(document, str):
        try:
            document = yaml.load(document, Loader=_DataLoader)  # a safe loader
        except yaml.YAMLError as err:
            raise _refused(source, f"invalid YAML: {err}") from err
        except RecursionError as err:
            raise _refused(source, f"nests deeper than {MAX_DEPTH} levels") from err
        except ValueError as err:  # an integer too long to read
            raise _refused(source, f"invalid YAML: {err}") from err
    if not isinstance(document, Mapping):
        raise _refused(source, f"must be a mapping, got {type(document).__name__}")
    problem = _shape_problem(document)
    if problem is not None:
        raise _refused(source, problem)
    return dict(document)


def _refused(source: str, message: str) -> WorkflowSpecError:
    return WorkflowSpecError([SpecError(source, "document", message)])


def _shape_problem(document: Mapping[str, Any]) -> str | None:
    """What makes ``document`` more than JSON data within bounds, or None. One pass, level by
    level, stopping at the first level past a bound (so an alias bomb costs little). Each level's
    keys and values are checked in bulk: a 10,000-task workflow holds ~200,000 of them."""
    level: list[Any] = [document]
    values = 0
    for depth in range(1, MAX_DEPTH + 2):
        if not level:
            return None
        if depth > MAX_DEPTH:
            return f"nests deeper than {MAX_DEPTH} levels"
        keys: list[Any] = []
        items: list[Any] = []
        for container in level:
            if isinstance(container, Mapping):
                keys.extend(container)
                items.extend(container.values())
            else:
                items.extend(container)
        values += len(keys) + len(items)
        if values > MAX_VALUES:
            return f"holds more than {MAX_VALUES:,} values once its YAML aliases are expanded"
        problem = _keys_problem(keys) or _items_problem(items)
        if problem is not None:
            return problem
        level = list(compress(items, map(_CONTAINERS.__contains__, map(type, items))))
    return None


def _keys_problem(keys: list[Any]) -> str | None:
    try:
        if all(map(str.isascii, keys)):
            return None
    except TypeError:
        pass  # a key that is not a string
    for key in keys:
        if not isinstance(key, str):
            return f"has a key that is not a string: {_shown(key)} ({kind_of(key)}); quote it"
        if not _is_text(key):
            return f"has a key that is not valid text (a lone surrogate): {_shown(key)}"
    return None


def _items_problem(items: list[Any]) -> str | None:
    kinds = set(map(type, items))
    if not kinds <= _PLAIN:
        odd = next(item for item in items if type(item) not in _PLAIN)
        return f"holds a {type(odd).__name__}, which is not JSON data"
    if str in kinds:
        texts = list(compress(items, map(_IS_STR, map(type, items))))
        if not all(map(str.isascii, texts)):
            wrong = next((text for text in texts if not _is_text(text)), None)
            if wrong is not None:
                return f"holds a string that is not valid text (a lone surrogate): {_shown(wrong)}"
    if int in kinds:
        longest = max(map(int.bit_length, compress(items, map(_IS_INT, map(type, items)))))
        if longest > _MAX_INT_BITS:
            return f"holds an integer of about {int(longest * 0.30103):,} digits, more than JSON data can; quote it"
    return None


def _is_text(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _shown(value: Any) -> str:
    text = repr(value) if not isinstance(value, (Mapping, list, tuple)) else type(value).__name__
    return text if len(text) <= 40 else text[:40] + "…"
