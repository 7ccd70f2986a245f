import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PackFile(_message.Message):
    __slots__ = ("path", "content")
    PATH_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    path: str
    content: bytes
    def __init__(self, path: _Optional[str] = ..., content: _Optional[bytes] = ...) -> None: ...

class Pack(_message.Message):
    __slots__ = ("ref", "label", "version", "description", "digest", "registered_by", "registered_at")
    REF_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    REGISTERED_BY_FIELD_NUMBER: _ClassVar[int]
    REGISTERED_AT_FIELD_NUMBER: _ClassVar[int]
    ref: str
    label: str
    version: str
    description: str
    digest: str
    registered_by: str
    registered_at: _timestamp_pb2.Timestamp
    def __init__(self, ref: _Optional[str] = ..., label: _Optional[str] = ..., version: _Optional[str] = ..., description: _Optional[str] = ..., digest: _Optional[str] = ..., registered_by: _Optional[str] = ..., registered_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Action(_message.Message):
    __slots__ = ("id", "ref", "pack", "name", "label", "description", "enabled", "runner_type", "entry_point", "parameters", "output", "timeout_seconds", "tags", "workflow_file", "pack_digest", "created_at", "updated_at", "updated_by", "timeout", "concurrency", "definition")
    ID_FIELD_NUMBER: _ClassVar[int]
    REF_FIELD_NUMBER: _ClassVar[int]
    PACK_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    RUNNER_TYPE_FIELD_NUMBER: _ClassVar[int]
    ENTRY_POINT_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_FILE_FIELD_NUMBER: _ClassVar[int]
    PACK_DIGEST_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_BY_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    CONCURRENCY_FIELD_NUMBER: _ClassVar[int]
    DEFINITION_FIELD_NUMBER: _ClassVar[int]
    id: str
    ref: str
    pack: str
    name: str
    label: str
    description: str
    enabled: bool
    runner_type: str
    entry_point: str
    parameters: _struct_pb2.Struct
    output: _struct_pb2.Struct
    timeout_seconds: float
    tags: _containers.RepeatedScalarFieldContainer[str]
    workflow_file: str
    pack_digest: str
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    updated_by: str
    timeout: _duration_pb2.Duration
    concurrency: ConcurrencyPolicy
    definition: str
    def __init__(self, id: _Optional[str] = ..., ref: _Optional[str] = ..., pack: _Optional[str] = ..., name: _Optional[str] = ..., label: _Optional[str] = ..., description: _Optional[str] = ..., enabled: bool = ..., runner_type: _Optional[str] = ..., entry_point: _Optional[str] = ..., parameters: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., output: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., timeout_seconds: _Optional[float] = ..., tags: _Optional[_Iterable[str]] = ..., workflow_file: _Optional[str] = ..., pack_digest: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_by: _Optional[str] = ..., timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., concurrency: _Optional[_Union[ConcurrencyPolicy, _Mapping]] = ..., definition: _Optional[str] = ...) -> None: ...

class ConcurrencyPolicy(_message.Message):
    __slots__ = ("limit", "key", "on_limit")
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    ON_LIMIT_FIELD_NUMBER: _ClassVar[int]
    limit: int
    key: str
    on_limit: str
    def __init__(self, limit: _Optional[int] = ..., key: _Optional[str] = ..., on_limit: _Optional[str] = ...) -> None: ...

class RegisterPackRequest(_message.Message):
    __slots__ = ("files", "request_id")
    FILES_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    files: _containers.RepeatedCompositeFieldContainer[PackFile]
    request_id: str
    def __init__(self, files: _Optional[_Iterable[_Union[PackFile, _Mapping]]] = ..., request_id: _Optional[str] = ...) -> None: ...

class RegisterPackResponse(_message.Message):
    __slots__ = ("pack", "actions", "removed_action_refs")
    PACK_FIELD_NUMBER: _ClassVar[int]
    ACTIONS_FIELD_NUMBER: _ClassVar[int]
    REMOVED_ACTION_REFS_FIELD_NUMBER: _ClassVar[int]
    pack: Pack
    actions: _containers.RepeatedCompositeFieldContainer[Action]
    removed_action_refs: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, pack: _Optional[_Union[Pack, _Mapping]] = ..., actions: _Optional[_Iterable[_Union[Action, _Mapping]]] = ..., removed_action_refs: _Optional[_Iterable[str]] = ...) -> None: ...

class CreateActionRequest(_message.Message):
    __slots__ = ("action", "request_id")
    ACTION_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    action: Action
    request_id: str
    def __init__(self, action: _Optional[_Union[Action, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class CreateActionResponse(_message.Message):
    __slots__ = ("action",)
    ACTION_FIELD_NUMBER: _ClassVar[int]
    action: Action
    def __init__(self, action: _Optional[_Union[Action, _Mapping]] = ...) -> None: ...

class UpdateActionRequest(_message.Message):
    __slots__ = ("id", "action", "request_id", "update_mask")
    ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    id: str
    action: Action
    request_id: str
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, id: _Optional[str] = ..., action: _Optional[_Union[Action, _Mapping]] = ..., request_id: _Optional[str] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class UpdateActionResponse(_message.Message):
    __slots__ = ("action",)
    ACTION_FIELD_NUMBER: _ClassVar[int]
    action: Action
    def __init__(self, action: _Optional[_Union[Action, _Mapping]] = ...) -> None: ...

class GetActionRequest(_message.Message):
    __slots__ = ("ref",)
    REF_FIELD_NUMBER: _ClassVar[int]
    ref: str
    def __init__(self, ref: _Optional[str] = ...) -> None: ...

class GetActionResponse(_message.Message):
    __slots__ = ("action",)
    ACTION_FIELD_NUMBER: _ClassVar[int]
    action: Action
    def __init__(self, action: _Optional[_Union[Action, _Mapping]] = ...) -> None: ...

class ListActionsRequest(_message.Message):
    __slots__ = ("pack", "page_size", "page_token")
    PACK_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    pack: str
    page_size: int
    page_token: str
    def __init__(self, pack: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListActionsResponse(_message.Message):
    __slots__ = ("actions", "next_page_token")
    ACTIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    actions: _containers.RepeatedCompositeFieldContainer[Action]
    next_page_token: str
    def __init__(self, actions: _Optional[_Iterable[_Union[Action, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeleteActionRequest(_message.Message):
    __slots__ = ("ref",)
    REF_FIELD_NUMBER: _ClassVar[int]
    ref: str
    def __init__(self, ref: _Optional[str] = ...) -> None: ...

class DeleteActionResponse(_message.Message):
    __slots__ = ("ref",)
    REF_FIELD_NUMBER: _ClassVar[int]
    ref: str
    def __init__(self, ref: _Optional[str] = ...) -> None: ...

class ListPacksRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListPacksResponse(_message.Message):
    __slots__ = ("packs", "next_page_token")
    PACKS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    packs: _containers.RepeatedCompositeFieldContainer[Pack]
    next_page_token: str
    def __init__(self, packs: _Optional[_Iterable[_Union[Pack, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetPackRequest(_message.Message):
    __slots__ = ("ref",)
    REF_FIELD_NUMBER: _ClassVar[int]
    ref: str
    def __init__(self, ref: _Optional[str] = ...) -> None: ...

class GetPackResponse(_message.Message):
    __slots__ = ("pack", "actions")
    PACK_FIELD_NUMBER: _ClassVar[int]
    ACTIONS_FIELD_NUMBER: _ClassVar[int]
    pack: Pack
    actions: _containers.RepeatedCompositeFieldContainer[Action]
    def __init__(self, pack: _Optional[_Union[Pack, _Mapping]] = ..., actions: _Optional[_Iterable[_Union[Action, _Mapping]]] = ...) -> None: ...

class DeletePackRequest(_message.Message):
    __slots__ = ("ref", "force", "request_id")
    REF_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ref: str
    force: bool
    request_id: str
    def __init__(self, ref: _Optional[str] = ..., force: bool = ..., request_id: _Optional[str] = ...) -> None: ...

class DeletePackResponse(_message.Message):
    __slots__ = ("ref", "deleted_action_refs", "active_executions")
    REF_FIELD_NUMBER: _ClassVar[int]
    DELETED_ACTION_REFS_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_EXECUTIONS_FIELD_NUMBER: _ClassVar[int]
    ref: str
    deleted_action_refs: _containers.RepeatedScalarFieldContainer[str]
    active_executions: int
    def __init__(self, ref: _Optional[str] = ..., deleted_action_refs: _Optional[_Iterable[str]] = ..., active_executions: _Optional[int] = ...) -> None: ...

class ValidateWorkflowRequest(_message.Message):
    __slots__ = ("definition", "pack")
    DEFINITION_FIELD_NUMBER: _ClassVar[int]
    PACK_FIELD_NUMBER: _ClassVar[int]
    definition: str
    pack: str
    def __init__(self, definition: _Optional[str] = ..., pack: _Optional[str] = ...) -> None: ...

class ValidateWorkflowResponse(_message.Message):
    __slots__ = ("problems", "workflow", "graph")
    PROBLEMS_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_FIELD_NUMBER: _ClassVar[int]
    GRAPH_FIELD_NUMBER: _ClassVar[int]
    problems: _containers.RepeatedCompositeFieldContainer[WorkflowProblem]
    workflow: _struct_pb2.Struct
    graph: WorkflowGraph
    def __init__(self, problems: _Optional[_Iterable[_Union[WorkflowProblem, _Mapping]]] = ..., workflow: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., graph: _Optional[_Union[WorkflowGraph, _Mapping]] = ...) -> None: ...

class WorkflowProblem(_message.Message):
    __slots__ = ("task", "field", "message", "line", "column")
    TASK_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    LINE_FIELD_NUMBER: _ClassVar[int]
    COLUMN_FIELD_NUMBER: _ClassVar[int]
    task: str
    field: str
    message: str
    line: int
    column: int
    def __init__(self, task: _Optional[str] = ..., field: _Optional[str] = ..., message: _Optional[str] = ..., line: _Optional[int] = ..., column: _Optional[int] = ...) -> None: ...

class WorkflowGraph(_message.Message):
    __slots__ = ("nodes", "edges")
    NODES_FIELD_NUMBER: _ClassVar[int]
    EDGES_FIELD_NUMBER: _ClassVar[int]
    nodes: _containers.RepeatedCompositeFieldContainer[GraphNode]
    edges: _containers.RepeatedCompositeFieldContainer[GraphEdge]
    def __init__(self, nodes: _Optional[_Iterable[_Union[GraphNode, _Mapping]]] = ..., edges: _Optional[_Iterable[_Union[GraphEdge, _Mapping]]] = ...) -> None: ...

class GraphNode(_message.Message):
    __slots__ = ("name", "action", "with_items", "join")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    WITH_ITEMS_FIELD_NUMBER: _ClassVar[int]
    JOIN_FIELD_NUMBER: _ClassVar[int]
    name: str
    action: str
    with_items: bool
    join: str
    def __init__(self, name: _Optional[str] = ..., action: _Optional[str] = ..., with_items: bool = ..., join: _Optional[str] = ...) -> None: ...

class GraphEdge(_message.Message):
    __slots__ = ("from_task", "to_task", "kind", "label")
    FROM_TASK_FIELD_NUMBER: _ClassVar[int]
    TO_TASK_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    from_task: str
    to_task: str
    kind: str
    label: str
    def __init__(self, from_task: _Optional[str] = ..., to_task: _Optional[str] = ..., kind: _Optional[str] = ..., label: _Optional[str] = ...) -> None: ...
