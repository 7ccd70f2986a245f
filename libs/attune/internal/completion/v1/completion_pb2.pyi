from attune.common.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class WatchCompletedRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WatchCompletedResponse(_message.Message):
    __slots__ = ("execution_ids", "parent_ids", "results")
    EXECUTION_IDS_FIELD_NUMBER: _ClassVar[int]
    PARENT_IDS_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    execution_ids: _containers.RepeatedScalarFieldContainer[str]
    parent_ids: _containers.RepeatedScalarFieldContainer[str]
    results: _containers.RepeatedCompositeFieldContainer[ExecutionResult]
    def __init__(self, execution_ids: _Optional[_Iterable[str]] = ..., parent_ids: _Optional[_Iterable[str]] = ..., results: _Optional[_Iterable[_Union[ExecutionResult, _Mapping]]] = ...) -> None: ...

class ExecutionResult(_message.Message):
    __slots__ = ("execution_id", "state", "result_json", "error", "started_at", "finished_at", "trace", "reporter")
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    RESULT_JSON_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    TRACE_FIELD_NUMBER: _ClassVar[int]
    REPORTER_FIELD_NUMBER: _ClassVar[int]
    execution_id: str
    state: _common_pb2.ExecutionState
    result_json: bytes
    error: str
    started_at: float
    finished_at: float
    trace: _common_pb2.TraceContext
    reporter: str
    def __init__(self, execution_id: _Optional[str] = ..., state: _Optional[_Union[_common_pb2.ExecutionState, str]] = ..., result_json: _Optional[bytes] = ..., error: _Optional[str] = ..., started_at: _Optional[float] = ..., finished_at: _Optional[float] = ..., trace: _Optional[_Union[_common_pb2.TraceContext, _Mapping]] = ..., reporter: _Optional[str] = ...) -> None: ...

class SubmitResultsRequest(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[ExecutionResult]
    def __init__(self, results: _Optional[_Iterable[_Union[ExecutionResult, _Mapping]]] = ...) -> None: ...

class SubmitResultsResponse(_message.Message):
    __slots__ = ("acked_execution_ids",)
    ACKED_EXECUTION_IDS_FIELD_NUMBER: _ClassVar[int]
    acked_execution_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, acked_execution_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class SubmitResultRequest(_message.Message):
    __slots__ = ("result",)
    RESULT_FIELD_NUMBER: _ClassVar[int]
    result: ExecutionResult
    def __init__(self, result: _Optional[_Union[ExecutionResult, _Mapping]] = ...) -> None: ...

class SubmitResultResponse(_message.Message):
    __slots__ = ("applied", "state")
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    applied: bool
    state: _common_pb2.ExecutionState
    def __init__(self, applied: bool = ..., state: _Optional[_Union[_common_pb2.ExecutionState, str]] = ...) -> None: ...
