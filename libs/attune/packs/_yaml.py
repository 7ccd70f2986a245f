"""Reading pack YAML: safe loading, bounded, duplicate keys refused, errors with line and column.

A YAML file is small but its aliases are not: a 1 KB "billion laughs" (ten aliases of ten
aliases of …) stands for a billion values, which the first code that walks it (JSON encoding of
a parameter default) expands. So each file is composed to its node graph first (libyaml, where
an alias is a second reference to its anchor's node), that graph is measured as if every alias
were a copy — values, scalar text, nesting depth, aliases — and only a file within
:class:`YamlLimits` becomes Python objects. Measuring is one pass over the distinct nodes, so a
bomb is refused in milliseconds; for an ordinary file it adds 15-20 % to the parse.

What comes out is JSON data only (strings, 64-bit integers, floats, booleans, null, lists,
mappings), since it is stored as JSON and sent as protobuf: timestamps stay strings, and
``!!binary`` and ``!!set`` are refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

__all__ = ["YamlLimits", "YamlProblem", "load_yaml"]

_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_INT64 = 2**63
_MERGE_TAG = "tag:yaml.org,2002:merge"
# Longest text of an integer within 64 bits: "-0b" and 64 binary digits, with room for "_"s.
_INT_TEXT_MAX = 100


@dataclass(frozen=True, kw_only=True)
class YamlLimits:
    """What one YAML file may hold (defaults: `attune.config.Settings`, ATTUNE_MAX_YAML_*)."""

    max_bytes: int
    max_aliases: int
    max_nodes: int
    max_depth: int


class YamlProblem(Exception):
    """A file that is not valid UTF-8 YAML, or is beyond a limit; the message says where or which.

    ``line`` and ``column`` (1-based, 0 when unknown) locate a syntax error for an editor that
    marks it; ``over_limit`` tells a file beyond ATTUNE_MAX_YAML_* from one that is wrong.
    """

    def __init__(self, message: str, *, line: int = 0, column: int = 0, over_limit: bool = False) -> None:
        super().__init__(message)
        self.line = line
        self.column = column
        self.over_limit = over_limit


@dataclass
class _Extent:
    """A node as if its aliases were copies: how many values, how much scalar text, how deep."""

    nodes: int
    chars: int
    depth: int  # collections nested: 0 for a scalar


class _StrictLoader(_BaseLoader):  # type: ignore[valid-type,misc]  # the base is picked at import time
    """A safe loader that refuses duplicate mapping keys (PyYAML silently overwrites them) and
    builds JSON data only."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    if not isinstance(node, yaml.MappingNode):  # "!!map text": the base constructor says so
        return loader.construct_mapping(node, deep=deep)
    seen: set[Any] = set()
    for key_node, _ in node.value:
        if key_node.tag == _MERGE_TAG:
            continue  # "<<: *base": the base constructor merges, the mapping's own keys winning
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


def _shown(text: str) -> str:
    return text if len(text) <= 24 else f"{text[:20]}… ({len(text)} characters)"


def _scalar_of(construct: Any, kind: str) -> Any:
    """``construct`` (PyYAML's for a plain scalar type), its ValueError, IndexError or KeyError on
    text an explicit tag forced on it (``!!int abc``) becoming an error with line and column."""

    def construct_scalar(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Any:
        try:
            return construct(loader, node)
        except (ValueError, IndexError, KeyError) as err:
            message = f"{_shown(str(node.value))} is not {kind}"
            raise yaml.constructor.ConstructorError(None, None, message, node.start_mark) from err

    return construct_scalar


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    # Checked before converting: int() of a few thousand digits raises ValueError in Python 3.11.
    value = None if len(node.value) > _INT_TEXT_MAX else _construct_any_int(loader, node)
    if value is None or not -_INT64 <= value < _INT64:
        raise yaml.constructor.ConstructorError(
            None, None, f"integer {_shown(node.value)} is out of range (integers must fit in 64 bits)", node.start_mark
        )
    return int(value)


_construct_any_int = _scalar_of(yaml.SafeLoader.construct_yaml_int, "an integer")


def _refuse_tag(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    tag = node.tag.replace("tag:yaml.org,2002:", "!!")
    raise yaml.constructor.ConstructorError(
        None,
        None,
        f"{tag} values are not supported (only strings, numbers, booleans, null, lists and mappings)",
        node.start_mark,
    )


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_StrictLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)
_StrictLoader.add_constructor("tag:yaml.org,2002:float", _scalar_of(yaml.SafeLoader.construct_yaml_float, "a number"))
_StrictLoader.add_constructor("tag:yaml.org,2002:bool", _scalar_of(yaml.SafeLoader.construct_yaml_bool, "a boolean"))
_StrictLoader.add_constructor("tag:yaml.org,2002:timestamp", yaml.SafeLoader.construct_yaml_str)
_StrictLoader.add_constructor("tag:yaml.org,2002:binary", _refuse_tag)
_StrictLoader.add_constructor("tag:yaml.org,2002:set", _refuse_tag)


def load_yaml(data: bytes, limits: YamlLimits) -> Any:
    """Parse one YAML document within ``limits``; raise :class:`YamlProblem` saying what and where."""
    if len(data) > limits.max_bytes:
        raise YamlProblem(
            f"{len(data):,} bytes, over the limit of {limits.max_bytes:,} bytes for a YAML file "
            "(ATTUNE_MAX_YAML_BYTES)",
            over_limit=True,
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise YamlProblem(f"not UTF-8 text (byte {err.start})") from err
    loader = _StrictLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_extent(node, limits)
        return loader.construct_document(node)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        if mark is None:
            raise YamlProblem(f"invalid YAML: {err.problem or err.context}") from err
        line, column = mark.line + 1, mark.column + 1
        where = f"line {line}, column {column}: " if err.problem_mark is not None else ""
        raise YamlProblem(f"invalid YAML: {where}{err.problem or err.context}", line=line, column=column) from err
    except yaml.YAMLError as err:
        raise YamlProblem(f"invalid YAML: {err}") from err
    finally:
        loader.dispose()


def _check_extent(root: yaml.Node, limits: YamlLimits) -> None:
    """Refuse a document whose aliases expand it beyond ``limits`` (or into itself)."""
    extent, aliases = _measure(root)
    if aliases > limits.max_aliases:
        raise YamlProblem(
            f"{aliases:,} aliases, over the limit of {limits.max_aliases:,} (ATTUNE_MAX_YAML_ALIASES)", over_limit=True
        )
    expanded = " once its aliases are expanded" if aliases else ""
    if extent.nodes > limits.max_nodes:
        raise YamlProblem(
            f"{extent.nodes:,} keys and values{expanded}, over the limit of {limits.max_nodes:,} "
            "(ATTUNE_MAX_YAML_NODES)",
            over_limit=True,
        )
    if extent.chars > limits.max_bytes:
        raise YamlProblem(
            f"{extent.chars:,} characters of text{expanded}, over the limit of {limits.max_bytes:,} "
            "(ATTUNE_MAX_YAML_BYTES)",
            over_limit=True,
        )
    if extent.depth > limits.max_depth:
        raise YamlProblem(
            f"lists and mappings nested {extent.depth} deep, over the limit of {limits.max_depth} "
            "(ATTUNE_MAX_YAML_DEPTH)",
            over_limit=True,
        )


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [child for pair in node.value for child in pair]
    return list(node.value)


def _measure(root: yaml.Node) -> tuple[_Extent, int]:
    """The root's extent and the number of aliases, in one iterative pass over distinct nodes.

    Every reference to a node already measured is an alias (libyaml composes an alias as a second
    reference to its anchor's node) and counts that node's extent again. A reference to a node
    still being measured is an alias inside its own anchor: a structure that contains itself.
    Most nodes are scalars, measured where their collection is met (plain tuples: this runs once
    per node of every pack file).
    """
    if isinstance(root, yaml.ScalarNode):
        return _Extent(nodes=1, chars=len(root.value), depth=0), 0
    extents: dict[int, tuple[int, int, int]] = {}  # id(node): (nodes, chars, depth)
    open_nodes: set[int] = set()  # the collections being measured: the current one's ancestors
    aliases = 0
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            open_nodes.discard(key)
            nodes, chars, depth = 1, 0, 0
            for child in _children(node):
                child_nodes, child_chars, child_depth = extents[id(child)]
                nodes += child_nodes
                chars += child_chars
                depth = max(depth, child_depth)
            extents[key] = (nodes, chars, depth + 1)
            continue
        if key in extents:
            aliases += 1
            continue
        if key in open_nodes:
            line = node.start_mark.line + 1
            raise YamlProblem(
                f"line {line}: an alias inside its own anchor makes a structure that contains itself",
                line=line,
                column=node.start_mark.column + 1,
            )
        open_nodes.add(key)
        stack.append((node, True))
        for child in _children(node):
            child_key = id(child)
            if not isinstance(child, yaml.ScalarNode):
                stack.append((child, False))
            elif child_key in extents:
                aliases += 1
            else:
                extents[child_key] = (1, len(child.value), 0)
    nodes, chars, depth = extents[id(root)]
    return _Extent(nodes=nodes, chars=chars, depth=depth), aliases
