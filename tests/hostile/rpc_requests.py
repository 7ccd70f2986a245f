"""Requests for fuzzing every public RPC: the methods, found from the descriptors of the public
protos, and hypothesis strategies that fill any request from its descriptor with hostile values.

A method is public when its service is in an `attune.<area>.v1` package (the internal contracts
are under `attune.internal`), so a new public RPC is fuzzed without a change here. Each field gets
values of its type that a careless or hostile client could send: text with odd unicode, NUL and
huge lengths; integers at their type's extremes; every double (NaN and infinities too); enum
numbers the contract does not define; `google.protobuf.Struct`s of random shape and of depths past
every limit; repeated fields of random sizes; maps. Half the requests are instead plausible ones
with a field or two spoilt, so that they get past the first check they meet. A caller's `Hints`
say what is plausible for a field (names and ids that exist) and may replace its hostile values.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

from google.protobuf import struct_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from hypothesis import strategies as st

import attune

Strategy: TypeAlias = st.SearchStrategy[Any]

# Verbs of methods that only read; any other method may change something.
_READ_VERBS = ("Get", "List", "Watch")


@dataclass(frozen=True)
class PublicMethod:
    """One RPC of the public contract."""

    path: str  # "/attune.execution.v1.ExecutionService/GetExecution"
    request: type[Message]
    response: type[Message]
    server_streaming: bool
    client_streaming: bool

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[1]

    @property
    def mutating(self) -> bool:
        """Whether the method may create or change something (judged by its verb)."""
        return not self.name.startswith(_READ_VERBS)


def public_methods() -> list[PublicMethod]:
    """Every method of every service of the public protos, by path."""
    root = Path(attune.__path__[0])
    found: list[PublicMethod] = []
    for module_file in sorted(root.glob("*/v1/*_pb2.py")):  # attune/internal/<area>/v1 is one level deeper
        module = importlib.import_module(".".join(("attune", *module_file.relative_to(root).with_suffix("").parts)))
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                found.append(
                    PublicMethod(
                        path=f"/{service.full_name}/{method.name}",
                        request=GetMessageClass(method.input_type),
                        response=GetMessageClass(method.output_type),
                        server_streaming=method.server_streaming,
                        client_streaming=method.client_streaming,
                    )
                )
    return sorted(found, key=lambda m: m.path)


# -- scalar values ------------------------------------------------------------------------------

ODD_TEXT = (
    "",
    " ",
    "\x00",
    "a\x00b",
    "\t\r\n",
    "\u202eevil",  # right-to-left override
    "\ufeffbom",
    "\u2028\u2029",
    "\U0010ffff",
    "e\u0301" * 8,  # combining marks
    "🙂" * 70,  # 280 bytes of UTF-8 in 70 characters
    "../../etc/passwd",
    "/abs",
    "a\\b",
    "' OR '1'='1",
    "%s%n%x",
    "{{ 7 * 7 }}",
    "${HOME}",
    "$(id)",
    "null",
    "NaN",
    "-1",
    "0" * 300,
)
# Lengths around the limits (255 characters, 8 KiB of metadata, 1 MiB of parameters).
_HUGE_LENGTHS = (255, 256, 8 * 1024, 70_000, 1024 * 1024 + 1)


def hostile_text(max_size: int = 40, *, huge: bool = True) -> st.SearchStrategy[str]:
    """Text as a hostile client sends it: any unicode (NUL included), odd strings, huge ones."""
    text = st.one_of(st.text(max_size=max_size), st.sampled_from(ODD_TEXT))
    if not huge:
        return text
    long = st.builds(lambda c, n: c * n, st.sampled_from(["x", "é", "🙂", "\x00"]), st.sampled_from(_HUGE_LENGTHS))
    return st.one_of(text, long)


def hostile_bytes(*, huge: bool = True) -> st.SearchStrategy[bytes]:
    data = st.binary(max_size=64)
    if not huge:
        return data
    return st.one_of(
        data, st.builds(lambda b, n: b * n, st.sampled_from([b"\x00", b"\xff"]), st.sampled_from(_HUGE_LENGTHS))
    )


def _integers(low: int, high: int) -> st.SearchStrategy[int]:
    edges = sorted(n for n in {low, low + 1, -1, 0, 1, 2, high - 1, high} if low <= n <= high)
    return st.one_of(st.sampled_from(edges), st.integers(low, high))


_INTEGER_RANGES = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}
_ODD_DOUBLES = (math.nan, math.inf, -math.inf, -0.0, 1e308, -1e308, 5e-324, 2.0**53 + 1, 1e-9)


def _doubles() -> st.SearchStrategy[float]:
    return st.one_of(st.sampled_from(_ODD_DOUBLES), st.floats())


def _scalar(field: FieldDescriptor, *, huge: bool = True) -> Strategy:
    kind = field.type
    if kind == FieldDescriptor.TYPE_STRING:
        return hostile_text(huge=huge)
    if kind == FieldDescriptor.TYPE_BYTES:
        return hostile_bytes(huge=huge)
    if kind == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if kind == FieldDescriptor.TYPE_DOUBLE:
        return _doubles()
    if kind == FieldDescriptor.TYPE_FLOAT:
        return st.floats(width=32)
    if kind == FieldDescriptor.TYPE_ENUM:  # proto3 enums are open: any int32 goes on the wire
        defined = [v.number for v in field.enum_type.values]
        return st.one_of(st.sampled_from(defined), _integers(-(2**31), 2**31 - 1))
    low, high = _INTEGER_RANGES[kind]
    return _integers(low, high)


# -- JSON values: google.protobuf.Struct, Value and ListValue -----------------------------------


def json_values(keys: st.SearchStrategy[str] | None = None, *, huge: bool = True) -> Strategy:
    """JSON as a Struct carries it (numbers are doubles, NaN and infinities included), of random
    shape, or a chain of objects and lists nested past every depth limit."""
    keys = keys if keys is not None else hostile_text(12, huge=False)
    scalars = st.one_of(st.none(), st.booleans(), _doubles(), hostile_text(huge=huge))
    shaped = st.recursive(
        scalars,
        lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4)),
        max_leaves=12,
    )
    deep = st.builds(_nested, st.integers(1, 48), st.booleans(), scalars)
    return st.one_of(shaped, deep)


def _nested(depth: int, as_lists: bool, leaf: Any) -> Any:
    value = leaf
    for _ in range(depth):
        value = [value] if as_lists else {"a": value}
    return value


def json_objects(keys: st.SearchStrategy[str] | None = None, *, huge: bool = True) -> st.SearchStrategy[dict[str, Any]]:
    """Objects for a Struct: random keys (or `keys`) to random JSON values."""
    key_strategy = keys if keys is not None else hostile_text(12)
    return st.dictionaries(key_strategy, json_values(key_strategy, huge=huge), max_size=5)


def _json_message(descriptor: Descriptor) -> Strategy | None:
    """Messages of google/protobuf/struct.proto, built from JSON values."""
    name = descriptor.full_name
    if name == "google.protobuf.Struct":
        return json_objects().map(as_struct)
    if name == "google.protobuf.Value":
        return json_values().map(lambda v: as_struct({"v": v}).fields["v"])
    if name == "google.protobuf.ListValue":
        return st.lists(json_values(), max_size=5).map(lambda v: as_struct({"v": v}).fields["v"].list_value)
    return None


def as_struct(value: dict[str, Any]) -> struct_pb2.Struct:
    """A JSON object as a Struct (NaN and infinities kept as numbers)."""
    struct = struct_pb2.Struct()
    struct.update(value)
    return struct


# -- messages ------------------------------------------------------------------------------------

# How many singular messages deep fields are filled (Struct values have their own depths).
_MAX_DEPTH = 3


@dataclass(frozen=True)
class Hints:
    """Strategies of fields, by a field's full name (`attune.registry.v1.RegisterPackRequest.files`)
    or its bare name (`ref`), the full name first; a repeated field's strategy makes whole lists."""

    hostile: Mapping[str, Strategy]  # instead of the hostile values of the field's type
    plausible: Mapping[str, Strategy]  # values a careful client sends

    def of(self, field: FieldDescriptor, *, plausible: bool) -> Strategy | None:
        hints = self.plausible if plausible else self.hostile
        return hints.get(field.full_name, hints.get(field.name))


def message_strategy(descriptor: Descriptor, hints: Hints, depth: int = 0) -> st.SearchStrategy[Message]:
    """A message of `descriptor`'s type: either every field hostile or unset, or a plausible
    message with one or two fields spoilt, which reaches past the first check a request meets."""
    json_message = _json_message(descriptor)
    if json_message is not None:
        return json_message
    optional = {
        field.name: strategy
        for field in descriptor.fields
        if (strategy := _field_strategy(field, hints, depth)) is not None
    }
    message_class = GetMessageClass(descriptor)
    hostile = st.fixed_dictionaries({}, optional=optional).map(lambda values: _build(message_class, values))
    nearly_valid = _nearly_valid(descriptor, hints, depth)
    return hostile if nearly_valid is None else st.one_of(hostile, nearly_valid)


def _nearly_valid(descriptor: Descriptor, hints: Hints, depth: int) -> st.SearchStrategy[Message] | None:
    """Plausible values in every field that has them, but for up to two fields given hostile ones."""
    fields = list(descriptor.fields)
    plausible = {f.name: s for f in fields if (s := _plausible(f, hints, depth)) is not None}
    if not plausible:
        return None
    hostile = {f.name: s for f in fields if (s := _field_strategy(f, hints, depth)) is not None}
    message_class = GetMessageClass(descriptor)

    @st.composite
    def spoilt(draw: st.DrawFn) -> Message:
        spoil = draw(st.sets(st.sampled_from(sorted(hostile)), max_size=2)) if hostile else set()
        values = {}
        for field in fields:
            if field.name in spoil:
                values[field.name] = draw(hostile[field.name])
            elif field.name in plausible:
                values[field.name] = draw(plausible[field.name])
        return _build(message_class, values)

    return spoilt()


def _plausible(field: FieldDescriptor, hints: Hints, depth: int) -> Strategy | None:
    """Values of `field` a careful client sends: its hint's, a defined enum value, a modest
    number; text only by hint (None: leave the field unset)."""
    hint = hints.of(field, plausible=True)
    if hint is not None:
        return hint
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        if field.message_type.GetOptions().map_entry or depth + 1 > _MAX_DEPTH:
            return None
        one: Strategy | None = _nearly_valid(field.message_type, hints, depth + 1)
    elif field.type == FieldDescriptor.TYPE_ENUM:
        one = st.sampled_from([v.number for v in field.enum_type.values])
    elif field.type == FieldDescriptor.TYPE_BOOL:
        one = st.booleans()
    elif field.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        one = st.floats(0, 100)
    elif field.type in _INTEGER_RANGES:
        one = st.integers(0, 100)
    else:
        one = None
    return st.lists(one, max_size=3) if one is not None and field.is_repeated else one


def _field_strategy(field: FieldDescriptor, hints: Hints, depth: int) -> Strategy | None:
    hint = hints.of(field, plausible=False)
    if hint is not None:
        return hint
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        key_field, value_field = field.message_type.fields_by_name["key"], field.message_type.fields_by_name["value"]
        value = _one_value(value_field, hints, depth)
        return None if value is None else st.dictionaries(_scalar(key_field), value, max_size=5)
    one = _one_value(field, hints, depth)
    if one is None or not field.is_repeated:
        return one
    few = st.lists(one, max_size=4)
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return few
    return st.one_of(few, st.lists(_scalar(field, huge=False), min_size=50, max_size=300))  # many, each small


def _one_value(field: FieldDescriptor, hints: Hints, depth: int) -> Strategy | None:
    if field.type != FieldDescriptor.TYPE_MESSAGE:
        return _scalar(field)
    if depth + 1 > _MAX_DEPTH and _json_message(field.message_type) is None:
        return None
    return message_strategy(field.message_type, hints, depth + 1)


def _build(message_class: type[Message], values: Mapping[str, Any]) -> Message:
    message = message_class()
    fields = message.DESCRIPTOR.fields_by_name
    for name, value in values.items():
        field = fields[name]
        target = getattr(message, name)
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            for key, item in value.items():
                if isinstance(item, Message):
                    target[key].CopyFrom(item)
                else:
                    target[key] = item
        elif field.is_repeated:
            target.extend(value)
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            target.CopyFrom(value)
        else:
            setattr(message, name, value)
    return message


# -- bytes ---------------------------------------------------------------------------------------


def mutated(encoded: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    """Encodings from `encoded` with bytes flipped, inserted, cut or repeated: wire data that is
    almost a request, which reaches further than random bytes do."""

    def mutate(data: bytes, edits: list[tuple[int, int, bytes]]) -> bytes:
        out = bytearray(data)
        for kind, where, chunk in edits:
            at = where % (len(out) + 1)
            if kind == 0 and at < len(out):
                out[at] ^= chunk[0] if chunk else 0xFF
            elif kind == 1:
                out[at:at] = chunk
            elif kind == 2:
                del out[at : at + len(chunk) + 1]
            elif len(out) < 64 * 1024:
                out += bytes(out[at:]) * 2
        return bytes(out)

    edit = st.tuples(st.integers(0, 3), st.integers(0, 2**16), st.binary(min_size=1, max_size=8))
    return st.builds(mutate, encoded, st.lists(edit, min_size=1, max_size=4))
