"""What UpdateAction changes: the fields its update_mask names, or all of them.

With a mask, the action as stored is the starting point and only the named fields take the
request's values, so a client changes the description without restating the runner type and
the rest. Without a mask (or with "*") the request's action replaces every mutable field, as
before masks existed. `timeout` and the deprecated `timeout_seconds` are one field stored once:
naming either takes both from the request, and `timeout` wins when set (`timeout_of`).
"""

from __future__ import annotations

from attune.grpcutil.errors import InvalidArgument, Violation
from attune.registry.v1 import registry_pb2
from attune_services.scheduler.actions import ActionRecord

#: Fields an update may name: every field of Action but its identity (ref, pack and name may be
#: named but must not change) and what the registry sets itself.
IMMUTABLE_FIELDS = frozenset({"ref", "pack", "name"})
_SET_BY_REGISTRY = frozenset({"id", "created_at", "updated_at", "updated_by", "pack_digest"})
MUTABLE_FIELDS = frozenset(registry_pb2.Action.DESCRIPTOR.fields_by_name) - IMMUTABLE_FIELDS - _SET_BY_REGISTRY
_BY_NUMBER = registry_pb2.Action.DESCRIPTOR.fields_by_number
_TIMEOUT_FIELDS = tuple(
    _BY_NUMBER[number].name
    for number in (registry_pb2.Action.TIMEOUT_FIELD_NUMBER, registry_pb2.Action.TIMEOUT_SECONDS_FIELD_NUMBER)
)
_WHOLE = "*"


def mask_paths(request: registry_pb2.UpdateActionRequest) -> list[str] | None:
    """The fields the request's mask names, checked; None for a whole replacement (no mask, or
    "*"). InvalidArgument naming each path that is not a field UpdateAction changes."""
    if not request.HasField("update_mask"):
        return None
    paths = list(request.update_mask.paths)
    if paths == [_WHOLE]:
        return None
    known = ", ".join(sorted(MUTABLE_FIELDS))
    violations = [
        Violation(f"update_mask.paths[{index}]", f"{path!r} is not a field UpdateAction changes (one of {known}, or *)")
        for index, path in enumerate(paths)
        if path not in MUTABLE_FIELDS | IMMUTABLE_FIELDS
    ]
    if violations:
        names = ", ".join(repr(path) for path in paths if path not in MUTABLE_FIELDS | IMMUTABLE_FIELDS)
        raise InvalidArgument(f"update_mask: unknown field {names}", violations)
    if not paths:
        raise InvalidArgument(
            "update_mask names no field", [Violation("update_mask.paths", "name a field to change, or * for all")]
        )
    return paths


def updated_action(stored: ActionRecord, request: registry_pb2.UpdateActionRequest) -> registry_pb2.Action:
    """The action as the update leaves it: `stored` with the fields the mask names taken from
    the request, or the request's action whole when there is no mask."""
    paths = mask_paths(request)
    if paths is None:
        return request.action
    given = request.action
    merged = stored.to_proto(with_definition=True)  # an unchanged definition is kept (`_checked_values`)
    for path in {*paths, *(_TIMEOUT_FIELDS if set(paths) & set(_TIMEOUT_FIELDS) else ())}:
        if path in IMMUTABLE_FIELDS:
            continue  # UpdateAction refuses a change of these on the request itself
        _copy_field(given, merged, path)
    return merged


def _copy_field(source: registry_pb2.Action, target: registry_pb2.Action, name: str) -> None:
    field = registry_pb2.Action.DESCRIPTOR.fields_by_name[name]
    target.ClearField(name)
    if field.is_repeated:
        getattr(target, name).extend(getattr(source, name))
    elif field.message_type is not None:
        if source.HasField(name):
            getattr(target, name).CopyFrom(getattr(source, name))
    else:
        setattr(target, name, getattr(source, name))
