"""Which field of a request protobuf could not decode, and why: for the INVALID_ARGUMENT that
answers it (`attune.grpcutil.request_guard`).

protobuf's parser says only "Error parsing message with type …". The two causes a client can
send — a string field that is not UTF-8, and messages nested deeper than the parser's limit (a
`google.protobuf.Struct` spends three levels per level of JSON, so about 33 levels of parameters)
— are found by walking the wire format against the message's descriptor, naming the field as the
request's JSON would: `parameters.config.name`, `files[2].path`. Runs only for a request that
already failed to decode; its work is linear in the request's size.
"""

from __future__ import annotations

from collections.abc import Iterator

from google.protobuf import struct_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from attune.grpcutil.errors import Violation

#: Levels of messages below the request that protobuf's parser accepts (upb's default depth).
PROTOBUF_MAX_DEPTH = 100
_VARINT, _FIXED64, _LENGTH_DELIMITED, _FIXED32 = 0, 1, 2, 5
_STRUCT, _VALUE, _LIST_VALUE = "google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue"
_VALUE_STRING, _VALUE_STRUCT, _VALUE_LIST = 3, 5, 6
_KEY_SHOWN = 40  # characters of a Struct key shown in a path
_VALUE_DESCRIPTOR: Descriptor = struct_pb2.Value.DESCRIPTOR


class _Malformed(Exception):
    """The bytes are not protobuf wire format at all."""


def undecodable_violation(descriptor: Descriptor, data: bytes) -> Violation:
    """The violation that explains why `data` is not a valid `descriptor` message."""
    try:
        found = _walk(descriptor, data, [], 0)
    except _Malformed:
        found = None
    if found is not None:
        return found
    return Violation("", f"the request is not a valid {descriptor.full_name} message")


def _walk(descriptor: Descriptor, data: bytes, path: list[str], depth: int) -> Violation | None:
    if depth > PROTOBUF_MAX_DEPTH:
        where = _joined(path[:2])
        return Violation(where, "is nested too deeply (a request may nest about 32 levels of objects and lists)")
    name = descriptor.full_name
    if name == _STRUCT:
        return _walk_struct(data, path, depth)
    if name == _LIST_VALUE:
        return _walk_list(data, path, depth)
    repeats: dict[int, int] = {}
    for number, chunk in _length_delimited(data):
        field = descriptor.fields_by_number.get(number)
        if field is None:
            continue
        if name == _VALUE:
            here = path  # a Value is its own kind, not a level of the path
        elif field.is_repeated:
            index = repeats.get(number, 0)
            repeats[number] = index + 1
            here = [*path, f"{field.name}[{index}]"]
        else:
            here = [*path, field.name]
        found = _check_field(field, chunk, here, depth)
        if found is not None:
            return found
    return None


def _check_field(field: FieldDescriptor, chunk: bytes, path: list[str], depth: int) -> Violation | None:
    if field.type == FieldDescriptor.TYPE_STRING:
        return None if _is_utf8(chunk) else Violation(_joined(path), "is not valid UTF-8")
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return _walk(field.message_type, chunk, path, depth + 1)
    return None


def _walk_struct(data: bytes, path: list[str], depth: int) -> Violation | None:
    for _, entry in _length_delimited(data):  # map<string, Value> entries: key = 1, value = 2
        key = b""
        value = b""
        for number, chunk in _length_delimited(entry):
            if number == 1:
                key = chunk
            elif number == 2:
                value = chunk
        if not _is_utf8(key):
            return Violation(_joined(path), "has a key that is not valid UTF-8")
        shown = key.decode()
        shown = shown if len(shown) <= _KEY_SHOWN else shown[:_KEY_SHOWN] + "…"
        found = _walk(_VALUE_DESCRIPTOR, value, [*path, shown], depth + 2)
        if found is not None:
            return found
    return None


def _walk_list(data: bytes, path: list[str], depth: int) -> Violation | None:
    for index, (_, item) in enumerate(_length_delimited(data)):
        found = _walk(_VALUE_DESCRIPTOR, item, [*path, f"[{index}]"], depth + 1)
        if found is not None:
            return found
    return None


def _length_delimited(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(field number, bytes) of each length-delimited field; other wire types are skipped."""
    pos = 0
    while pos < len(data):
        tag, pos = _varint(data, pos)
        number, wire = tag >> 3, tag & 7
        if wire == _VARINT:
            _, pos = _varint(data, pos)
        elif wire == _FIXED64:
            pos += 8
        elif wire == _FIXED32:
            pos += 4
        elif wire == _LENGTH_DELIMITED:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise _Malformed()
            yield number, data[pos : pos + length]
            pos += length
        else:  # groups: no message of the contract has one
            raise _Malformed()
    if pos > len(data):
        raise _Malformed()


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise _Malformed()
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _is_utf8(chunk: bytes) -> bool:
    try:
        chunk.decode()
    except UnicodeDecodeError:
        return False
    return True


def _joined(path: list[str]) -> str:
    return ".".join(path).replace(".[", "[")
