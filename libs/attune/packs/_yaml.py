"""Reading pack YAML: safe loading, duplicate keys refused, errors with line and column."""

from __future__ import annotations

from typing import Any

import yaml

__all__ = ["YamlProblem", "load_yaml"]

_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class YamlProblem(Exception):
    """A file that is not valid UTF-8 YAML; the message says where."""


class _StrictLoader(_BaseLoader):  # type: ignore[valid-type,misc]  # the base is picked at import time
    """A safe loader that refuses duplicate mapping keys, which PyYAML silently overwrites."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            duplicate = key in seen
        except TypeError:
            continue  # unhashable key: the base constructor reports it
        if duplicate:
            mark = key_node.start_mark
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml(data: bytes) -> Any:
    """Parse one YAML document; raise :class:`YamlProblem` saying what and where."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise YamlProblem(f"not UTF-8 text (byte {err.start})") from err
    try:
        return yaml.load(text, Loader=_StrictLoader)
    except yaml.MarkedYAMLError as err:
        where = ""
        if err.problem_mark is not None:
            where = f"line {err.problem_mark.line + 1}, column {err.problem_mark.column + 1}: "
        raise YamlProblem(f"invalid YAML: {where}{err.problem or err.context}") from err
    except yaml.YAMLError as err:
        raise YamlProblem(f"invalid YAML: {err}") from err
