from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class ExecutionState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EXECUTION_STATE_UNSPECIFIED: _ClassVar[ExecutionState]
    EXECUTION_STATE_REQUESTED: _ClassVar[ExecutionState]
    EXECUTION_STATE_SCHEDULING: _ClassVar[ExecutionState]
    EXECUTION_STATE_SCHEDULED: _ClassVar[ExecutionState]
    EXECUTION_STATE_RUNNING: _ClassVar[ExecutionState]
    EXECUTION_STATE_SUCCEEDED: _ClassVar[ExecutionState]
    EXECUTION_STATE_FAILED: _ClassVar[ExecutionState]
    EXECUTION_STATE_TIMEOUT: _ClassVar[ExecutionState]
    EXECUTION_STATE_CANCELLED: _ClassVar[ExecutionState]
    EXECUTION_STATE_ABANDONED: _ClassVar[ExecutionState]
    EXECUTION_STATE_CANCELING: _ClassVar[ExecutionState]
    EXECUTION_STATE_PENDING: _ClassVar[ExecutionState]
    EXECUTION_STATE_PAUSING: _ClassVar[ExecutionState]
    EXECUTION_STATE_PAUSED: _ClassVar[ExecutionState]
EXECUTION_STATE_UNSPECIFIED: ExecutionState
EXECUTION_STATE_REQUESTED: ExecutionState
EXECUTION_STATE_SCHEDULING: ExecutionState
EXECUTION_STATE_SCHEDULED: ExecutionState
EXECUTION_STATE_RUNNING: ExecutionState
EXECUTION_STATE_SUCCEEDED: ExecutionState
EXECUTION_STATE_FAILED: ExecutionState
EXECUTION_STATE_TIMEOUT: ExecutionState
EXECUTION_STATE_CANCELLED: ExecutionState
EXECUTION_STATE_ABANDONED: ExecutionState
EXECUTION_STATE_CANCELING: ExecutionState
EXECUTION_STATE_PENDING: ExecutionState
EXECUTION_STATE_PAUSING: ExecutionState
EXECUTION_STATE_PAUSED: ExecutionState

class TraceContext(_message.Message):
    __slots__ = ("traceparent", "tracestate")
    TRACEPARENT_FIELD_NUMBER: _ClassVar[int]
    TRACESTATE_FIELD_NUMBER: _ClassVar[int]
    traceparent: str
    tracestate: str
    def __init__(self, traceparent: _Optional[str] = ..., tracestate: _Optional[str] = ...) -> None: ...

class WorkflowLink(_message.Message):
    __slots__ = ("workflow_execution_id", "task_name", "run", "item_index", "attempt")
    WORKFLOW_EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_NAME_FIELD_NUMBER: _ClassVar[int]
    RUN_FIELD_NUMBER: _ClassVar[int]
    ITEM_INDEX_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    workflow_execution_id: str
    task_name: str
    run: int
    item_index: int
    attempt: int
    def __init__(self, workflow_execution_id: _Optional[str] = ..., task_name: _Optional[str] = ..., run: _Optional[int] = ..., item_index: _Optional[int] = ..., attempt: _Optional[int] = ...) -> None: ...
