from attune.common.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ChildExecutionRequest(_message.Message):
    __slots__ = ("action_ref", "parameters_json", "request_id", "timeout_seconds", "parent_id", "link", "trace", "depth")
    ACTION_REF_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_JSON_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PARENT_ID_FIELD_NUMBER: _ClassVar[int]
    LINK_FIELD_NUMBER: _ClassVar[int]
    TRACE_FIELD_NUMBER: _ClassVar[int]
    DEPTH_FIELD_NUMBER: _ClassVar[int]
    action_ref: str
    parameters_json: bytes
    request_id: str
    timeout_seconds: float
    parent_id: str
    link: _common_pb2.WorkflowLink
    trace: _common_pb2.TraceContext
    depth: int
    def __init__(self, action_ref: _Optional[str] = ..., parameters_json: _Optional[bytes] = ..., request_id: _Optional[str] = ..., timeout_seconds: _Optional[float] = ..., parent_id: _Optional[str] = ..., link: _Optional[_Union[_common_pb2.WorkflowLink, _Mapping]] = ..., trace: _Optional[_Union[_common_pb2.TraceContext, _Mapping]] = ..., depth: _Optional[int] = ...) -> None: ...

class ChildExecutionResponse(_message.Message):
    __slots__ = ("request_id", "execution_id", "error")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    execution_id: str
    error: str
    def __init__(self, request_id: _Optional[str] = ..., execution_id: _Optional[str] = ..., error: _Optional[str] = ...) -> None: ...

class RequestChildExecutionsRequest(_message.Message):
    __slots__ = ("children",)
    CHILDREN_FIELD_NUMBER: _ClassVar[int]
    children: _containers.RepeatedCompositeFieldContainer[ChildExecutionRequest]
    def __init__(self, children: _Optional[_Iterable[_Union[ChildExecutionRequest, _Mapping]]] = ...) -> None: ...

class RequestChildExecutionsResponse(_message.Message):
    __slots__ = ("children",)
    CHILDREN_FIELD_NUMBER: _ClassVar[int]
    children: _containers.RepeatedCompositeFieldContainer[ChildExecutionResponse]
    def __init__(self, children: _Optional[_Iterable[_Union[ChildExecutionResponse, _Mapping]]] = ...) -> None: ...

class StreamChildExecutionsRequest(_message.Message):
    __slots__ = ("batch_id", "children")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    CHILDREN_FIELD_NUMBER: _ClassVar[int]
    batch_id: int
    children: _containers.RepeatedCompositeFieldContainer[ChildExecutionRequest]
    def __init__(self, batch_id: _Optional[int] = ..., children: _Optional[_Iterable[_Union[ChildExecutionRequest, _Mapping]]] = ...) -> None: ...

class StreamChildExecutionsResponse(_message.Message):
    __slots__ = ("batch_id", "children")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    CHILDREN_FIELD_NUMBER: _ClassVar[int]
    batch_id: int
    children: _containers.RepeatedCompositeFieldContainer[ChildExecutionResponse]
    def __init__(self, batch_id: _Optional[int] = ..., children: _Optional[_Iterable[_Union[ChildExecutionResponse, _Mapping]]] = ...) -> None: ...

class CancelChildExecutionRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class CancelChildExecutionResponse(_message.Message):
    __slots__ = ("state",)
    STATE_FIELD_NUMBER: _ClassVar[int]
    state: _common_pb2.ExecutionState
    def __init__(self, state: _Optional[_Union[_common_pb2.ExecutionState, str]] = ...) -> None: ...
