import datetime

from attune.common.v1 import common_pb2 as _common_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class LogStream(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LOG_STREAM_UNSPECIFIED: _ClassVar[LogStream]
    LOG_STREAM_STDOUT: _ClassVar[LogStream]
    LOG_STREAM_STDERR: _ClassVar[LogStream]
LOG_STREAM_UNSPECIFIED: LogStream
LOG_STREAM_STDOUT: LogStream
LOG_STREAM_STDERR: LogStream

class Execution(_message.Message):
    __slots__ = ("id", "action_ref", "state", "parameters", "result", "error", "parent_id", "link", "worker_id", "trace_id", "timeout_seconds", "runner_type", "created_at", "started_at", "finished_at", "requested_by", "result_size_bytes", "result_truncated", "result_preview", "timeout", "rerun_of")
    ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_REF_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    PARENT_ID_FIELD_NUMBER: _ClassVar[int]
    LINK_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    RUNNER_TYPE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_BY_FIELD_NUMBER: _ClassVar[int]
    RESULT_SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    RESULT_TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    RESULT_PREVIEW_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    RERUN_OF_FIELD_NUMBER: _ClassVar[int]
    id: str
    action_ref: str
    state: _common_pb2.ExecutionState
    parameters: _struct_pb2.Struct
    result: _struct_pb2.Struct
    error: str
    parent_id: str
    link: _common_pb2.WorkflowLink
    worker_id: str
    trace_id: str
    timeout_seconds: float
    runner_type: str
    created_at: _timestamp_pb2.Timestamp
    started_at: _timestamp_pb2.Timestamp
    finished_at: _timestamp_pb2.Timestamp
    requested_by: str
    result_size_bytes: int
    result_truncated: bool
    result_preview: str
    timeout: _duration_pb2.Duration
    rerun_of: str
    def __init__(self, id: _Optional[str] = ..., action_ref: _Optional[str] = ..., state: _Optional[_Union[_common_pb2.ExecutionState, str]] = ..., parameters: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., result: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., error: _Optional[str] = ..., parent_id: _Optional[str] = ..., link: _Optional[_Union[_common_pb2.WorkflowLink, _Mapping]] = ..., worker_id: _Optional[str] = ..., trace_id: _Optional[str] = ..., timeout_seconds: _Optional[float] = ..., runner_type: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., finished_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., requested_by: _Optional[str] = ..., result_size_bytes: _Optional[int] = ..., result_truncated: bool = ..., result_preview: _Optional[str] = ..., timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., rerun_of: _Optional[str] = ...) -> None: ...

class ChildrenSummary(_message.Message):
    __slots__ = ("total", "by_state")
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    BY_STATE_FIELD_NUMBER: _ClassVar[int]
    total: int
    by_state: _containers.RepeatedCompositeFieldContainer[StateCount]
    def __init__(self, total: _Optional[int] = ..., by_state: _Optional[_Iterable[_Union[StateCount, _Mapping]]] = ...) -> None: ...

class StateCount(_message.Message):
    __slots__ = ("state", "count")
    STATE_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    state: _common_pb2.ExecutionState
    count: int
    def __init__(self, state: _Optional[_Union[_common_pb2.ExecutionState, str]] = ..., count: _Optional[int] = ...) -> None: ...

class RequestExecutionRequest(_message.Message):
    __slots__ = ("action_ref", "parameters", "request_id", "timeout_seconds", "timeout")
    ACTION_REF_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    action_ref: str
    parameters: _struct_pb2.Struct
    request_id: str
    timeout_seconds: float
    timeout: _duration_pb2.Duration
    def __init__(self, action_ref: _Optional[str] = ..., parameters: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., request_id: _Optional[str] = ..., timeout_seconds: _Optional[float] = ..., timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class RequestExecutionResponse(_message.Message):
    __slots__ = ("execution",)
    EXECUTION_FIELD_NUMBER: _ClassVar[int]
    execution: Execution
    def __init__(self, execution: _Optional[_Union[Execution, _Mapping]] = ...) -> None: ...

class GetExecutionRequest(_message.Message):
    __slots__ = ("id", "page_size")
    ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    id: str
    page_size: int
    def __init__(self, id: _Optional[str] = ..., page_size: _Optional[int] = ...) -> None: ...

class GetExecutionResponse(_message.Message):
    __slots__ = ("execution", "children", "children_summary", "next_page_token")
    EXECUTION_FIELD_NUMBER: _ClassVar[int]
    CHILDREN_FIELD_NUMBER: _ClassVar[int]
    CHILDREN_SUMMARY_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    execution: Execution
    children: _containers.RepeatedCompositeFieldContainer[Execution]
    children_summary: ChildrenSummary
    next_page_token: str
    def __init__(self, execution: _Optional[_Union[Execution, _Mapping]] = ..., children: _Optional[_Iterable[_Union[Execution, _Mapping]]] = ..., children_summary: _Optional[_Union[ChildrenSummary, _Mapping]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListExecutionsRequest(_message.Message):
    __slots__ = ("state", "action_ref", "parent_id", "page_size", "page_token", "created_after", "created_before", "states", "requested_by", "include_children")
    STATE_FIELD_NUMBER: _ClassVar[int]
    ACTION_REF_FIELD_NUMBER: _ClassVar[int]
    PARENT_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    CREATED_AFTER_FIELD_NUMBER: _ClassVar[int]
    CREATED_BEFORE_FIELD_NUMBER: _ClassVar[int]
    STATES_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_BY_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_CHILDREN_FIELD_NUMBER: _ClassVar[int]
    state: _common_pb2.ExecutionState
    action_ref: str
    parent_id: str
    page_size: int
    page_token: str
    created_after: _timestamp_pb2.Timestamp
    created_before: _timestamp_pb2.Timestamp
    states: _containers.RepeatedScalarFieldContainer[_common_pb2.ExecutionState]
    requested_by: str
    include_children: bool
    def __init__(self, state: _Optional[_Union[_common_pb2.ExecutionState, str]] = ..., action_ref: _Optional[str] = ..., parent_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., created_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., states: _Optional[_Iterable[_Union[_common_pb2.ExecutionState, str]]] = ..., requested_by: _Optional[str] = ..., include_children: bool = ...) -> None: ...

class ListExecutionsResponse(_message.Message):
    __slots__ = ("executions", "next_page_token")
    EXECUTIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    executions: _containers.RepeatedCompositeFieldContainer[Execution]
    next_page_token: str
    def __init__(self, executions: _Optional[_Iterable[_Union[Execution, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CancelExecutionRequest(_message.Message):
    __slots__ = ("id", "request_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    request_id: str
    def __init__(self, id: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class CancelExecutionResponse(_message.Message):
    __slots__ = ("execution",)
    EXECUTION_FIELD_NUMBER: _ClassVar[int]
    execution: Execution
    def __init__(self, execution: _Optional[_Union[Execution, _Mapping]] = ...) -> None: ...

class PauseExecutionRequest(_message.Message):
    __slots__ = ("id", "request_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    request_id: str
    def __init__(self, id: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class PauseExecutionResponse(_message.Message):
    __slots__ = ("execution",)
    EXECUTION_FIELD_NUMBER: _ClassVar[int]
    execution: Execution
    def __init__(self, execution: _Optional[_Union[Execution, _Mapping]] = ...) -> None: ...

class ResumeExecutionRequest(_message.Message):
    __slots__ = ("id", "request_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    request_id: str
    def __init__(self, id: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class ResumeExecutionResponse(_message.Message):
    __slots__ = ("execution",)
    EXECUTION_FIELD_NUMBER: _ClassVar[int]
    execution: Execution
    def __init__(self, execution: _Optional[_Union[Execution, _Mapping]] = ...) -> None: ...

class WatchExecutionRequest(_message.Message):
    __slots__ = ("id", "page_size")
    ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    id: str
    page_size: int
    def __init__(self, id: _Optional[str] = ..., page_size: _Optional[int] = ...) -> None: ...

class WatchExecutionResponse(_message.Message):
    __slots__ = ("execution", "children", "children_summary", "next_page_token", "is_change")
    EXECUTION_FIELD_NUMBER: _ClassVar[int]
    CHILDREN_FIELD_NUMBER: _ClassVar[int]
    CHILDREN_SUMMARY_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    IS_CHANGE_FIELD_NUMBER: _ClassVar[int]
    execution: Execution
    children: _containers.RepeatedCompositeFieldContainer[Execution]
    children_summary: ChildrenSummary
    next_page_token: str
    is_change: bool
    def __init__(self, execution: _Optional[_Union[Execution, _Mapping]] = ..., children: _Optional[_Iterable[_Union[Execution, _Mapping]]] = ..., children_summary: _Optional[_Union[ChildrenSummary, _Mapping]] = ..., next_page_token: _Optional[str] = ..., is_change: bool = ...) -> None: ...

class GetExecutionResultRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class GetExecutionResultResponse(_message.Message):
    __slots__ = ("data", "offset", "total_bytes")
    DATA_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    offset: int
    total_bytes: int
    def __init__(self, data: _Optional[bytes] = ..., offset: _Optional[int] = ..., total_bytes: _Optional[int] = ...) -> None: ...

class PurgeExecutionsRequest(_message.Message):
    __slots__ = ("older_than_seconds",)
    OLDER_THAN_SECONDS_FIELD_NUMBER: _ClassVar[int]
    older_than_seconds: float
    def __init__(self, older_than_seconds: _Optional[float] = ...) -> None: ...

class PurgeExecutionsResponse(_message.Message):
    __slots__ = ("purged",)
    PURGED_FIELD_NUMBER: _ClassVar[int]
    purged: int
    def __init__(self, purged: _Optional[int] = ...) -> None: ...

class ExecutionLogPosition(_message.Message):
    __slots__ = ("execution_id", "seq")
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    execution_id: str
    seq: int
    def __init__(self, execution_id: _Optional[str] = ..., seq: _Optional[int] = ...) -> None: ...

class WatchExecutionLogsRequest(_message.Message):
    __slots__ = ("id", "after_seq", "include_children", "children_after", "stored_only")
    ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQ_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_CHILDREN_FIELD_NUMBER: _ClassVar[int]
    CHILDREN_AFTER_FIELD_NUMBER: _ClassVar[int]
    STORED_ONLY_FIELD_NUMBER: _ClassVar[int]
    id: str
    after_seq: int
    include_children: bool
    children_after: _containers.RepeatedCompositeFieldContainer[ExecutionLogPosition]
    stored_only: bool
    def __init__(self, id: _Optional[str] = ..., after_seq: _Optional[int] = ..., include_children: bool = ..., children_after: _Optional[_Iterable[_Union[ExecutionLogPosition, _Mapping]]] = ..., stored_only: bool = ...) -> None: ...

class WatchExecutionLogsResponse(_message.Message):
    __slots__ = ("execution_id", "seq", "stream", "written_at", "data", "task_name")
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    WRITTEN_AT_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    TASK_NAME_FIELD_NUMBER: _ClassVar[int]
    execution_id: str
    seq: int
    stream: LogStream
    written_at: _timestamp_pb2.Timestamp
    data: bytes
    task_name: str
    def __init__(self, execution_id: _Optional[str] = ..., seq: _Optional[int] = ..., stream: _Optional[_Union[LogStream, str]] = ..., written_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., data: _Optional[bytes] = ..., task_name: _Optional[str] = ...) -> None: ...

class RespondToExecutionRequest(_message.Message):
    __slots__ = ("id", "request_id", "answer")
    ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    id: str
    request_id: str
    answer: _struct_pb2.Struct
    def __init__(self, id: _Optional[str] = ..., request_id: _Optional[str] = ..., answer: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class RespondToExecutionResponse(_message.Message):
    __slots__ = ("execution",)
    EXECUTION_FIELD_NUMBER: _ClassVar[int]
    execution: Execution
    def __init__(self, execution: _Optional[_Union[Execution, _Mapping]] = ...) -> None: ...

class RerunExecutionRequest(_message.Message):
    __slots__ = ("id", "parameters", "from_tasks", "task_inputs", "request_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    FROM_TASKS_FIELD_NUMBER: _ClassVar[int]
    TASK_INPUTS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    parameters: _struct_pb2.Struct
    from_tasks: _containers.RepeatedScalarFieldContainer[str]
    task_inputs: _containers.RepeatedCompositeFieldContainer[TaskInput]
    request_id: str
    def __init__(self, id: _Optional[str] = ..., parameters: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., from_tasks: _Optional[_Iterable[str]] = ..., task_inputs: _Optional[_Iterable[_Union[TaskInput, _Mapping]]] = ..., request_id: _Optional[str] = ...) -> None: ...

class TaskInput(_message.Message):
    __slots__ = ("task", "input")
    TASK_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    task: str
    input: _struct_pb2.Struct
    def __init__(self, task: _Optional[str] = ..., input: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class RerunExecutionResponse(_message.Message):
    __slots__ = ("execution",)
    EXECUTION_FIELD_NUMBER: _ClassVar[int]
    execution: Execution
    def __init__(self, execution: _Optional[_Union[Execution, _Mapping]] = ...) -> None: ...

class RunExecutionRequest(_message.Message):
    __slots__ = ("request", "wait")
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    WAIT_FIELD_NUMBER: _ClassVar[int]
    request: RequestExecutionRequest
    wait: _duration_pb2.Duration
    def __init__(self, request: _Optional[_Union[RequestExecutionRequest, _Mapping]] = ..., wait: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class RunExecutionResponse(_message.Message):
    __slots__ = ("execution", "ended")
    EXECUTION_FIELD_NUMBER: _ClassVar[int]
    ENDED_FIELD_NUMBER: _ClassVar[int]
    execution: Execution
    ended: bool
    def __init__(self, execution: _Optional[_Union[Execution, _Mapping]] = ..., ended: bool = ...) -> None: ...

class RunExecutionsRequest(_message.Message):
    __slots__ = ("request", "wait")
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    WAIT_FIELD_NUMBER: _ClassVar[int]
    request: RequestExecutionRequest
    wait: _duration_pb2.Duration
    def __init__(self, request: _Optional[_Union[RequestExecutionRequest, _Mapping]] = ..., wait: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class RunExecutionsResponse(_message.Message):
    __slots__ = ("execution", "ended", "index", "error")
    EXECUTION_FIELD_NUMBER: _ClassVar[int]
    ENDED_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    execution: Execution
    ended: bool
    index: int
    error: RunError
    def __init__(self, execution: _Optional[_Union[Execution, _Mapping]] = ..., ended: bool = ..., index: _Optional[int] = ..., error: _Optional[_Union[RunError, _Mapping]] = ...) -> None: ...

class RunError(_message.Message):
    __slots__ = ("code", "message", "violations")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    VIOLATIONS_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    violations: _containers.RepeatedCompositeFieldContainer[FieldViolation]
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ..., violations: _Optional[_Iterable[_Union[FieldViolation, _Mapping]]] = ...) -> None: ...

class FieldViolation(_message.Message):
    __slots__ = ("field", "description")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    field: str
    description: str
    def __init__(self, field: _Optional[str] = ..., description: _Optional[str] = ...) -> None: ...
