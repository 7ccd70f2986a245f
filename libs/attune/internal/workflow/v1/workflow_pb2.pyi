from attune.common.v1 import common_pb2 as _common_pb2
from attune.workflow.v1 import workflow_pb2 as _workflow_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class WorkflowStart(_message.Message):
    __slots__ = ("execution_id", "action_ref", "workflow_yaml", "workflow_source", "parameters_json", "depth", "trace", "timeout_seconds", "rerun_of", "from_tasks", "task_inputs_json")
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_REF_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_YAML_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_SOURCE_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_JSON_FIELD_NUMBER: _ClassVar[int]
    DEPTH_FIELD_NUMBER: _ClassVar[int]
    TRACE_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    RERUN_OF_FIELD_NUMBER: _ClassVar[int]
    FROM_TASKS_FIELD_NUMBER: _ClassVar[int]
    TASK_INPUTS_JSON_FIELD_NUMBER: _ClassVar[int]
    execution_id: str
    action_ref: str
    workflow_yaml: str
    workflow_source: str
    parameters_json: bytes
    depth: int
    trace: _common_pb2.TraceContext
    timeout_seconds: float
    rerun_of: str
    from_tasks: _containers.RepeatedScalarFieldContainer[str]
    task_inputs_json: bytes
    def __init__(self, execution_id: _Optional[str] = ..., action_ref: _Optional[str] = ..., workflow_yaml: _Optional[str] = ..., workflow_source: _Optional[str] = ..., parameters_json: _Optional[bytes] = ..., depth: _Optional[int] = ..., trace: _Optional[_Union[_common_pb2.TraceContext, _Mapping]] = ..., timeout_seconds: _Optional[float] = ..., rerun_of: _Optional[str] = ..., from_tasks: _Optional[_Iterable[str]] = ..., task_inputs_json: _Optional[bytes] = ...) -> None: ...

class StartWorkflowsRequest(_message.Message):
    __slots__ = ("workflows",)
    WORKFLOWS_FIELD_NUMBER: _ClassVar[int]
    workflows: _containers.RepeatedCompositeFieldContainer[WorkflowStart]
    def __init__(self, workflows: _Optional[_Iterable[_Union[WorkflowStart, _Mapping]]] = ...) -> None: ...

class StartWorkflowsResponse(_message.Message):
    __slots__ = ("accepted_execution_ids",)
    ACCEPTED_EXECUTION_IDS_FIELD_NUMBER: _ClassVar[int]
    accepted_execution_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, accepted_execution_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class TaskOutcome(_message.Message):
    __slots__ = ("execution_id", "link", "state", "result_json", "error")
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    LINK_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    RESULT_JSON_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    execution_id: str
    link: _common_pb2.WorkflowLink
    state: _common_pb2.ExecutionState
    result_json: bytes
    error: str
    def __init__(self, execution_id: _Optional[str] = ..., link: _Optional[_Union[_common_pb2.WorkflowLink, _Mapping]] = ..., state: _Optional[_Union[_common_pb2.ExecutionState, str]] = ..., result_json: _Optional[bytes] = ..., error: _Optional[str] = ...) -> None: ...

class ReportOutcomesRequest(_message.Message):
    __slots__ = ("outcomes",)
    OUTCOMES_FIELD_NUMBER: _ClassVar[int]
    outcomes: _containers.RepeatedCompositeFieldContainer[TaskOutcome]
    def __init__(self, outcomes: _Optional[_Iterable[_Union[TaskOutcome, _Mapping]]] = ...) -> None: ...

class ReportOutcomesResponse(_message.Message):
    __slots__ = ("acked_execution_ids",)
    ACKED_EXECUTION_IDS_FIELD_NUMBER: _ClassVar[int]
    acked_execution_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, acked_execution_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class GetWorkflowRunRequest(_message.Message):
    __slots__ = ("execution_id",)
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    execution_id: str
    def __init__(self, execution_id: _Optional[str] = ...) -> None: ...

class GetWorkflowRunResponse(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: _workflow_pb2.WorkflowRun
    def __init__(self, run: _Optional[_Union[_workflow_pb2.WorkflowRun, _Mapping]] = ...) -> None: ...

class ListWorkflowRunsRequest(_message.Message):
    __slots__ = ("state", "page_size", "page_token")
    STATE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    state: _workflow_pb2.WorkflowState
    page_size: int
    page_token: str
    def __init__(self, state: _Optional[_Union[_workflow_pb2.WorkflowState, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListWorkflowRunsResponse(_message.Message):
    __slots__ = ("runs", "next_page_token")
    RUNS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedCompositeFieldContainer[_workflow_pb2.WorkflowRun]
    next_page_token: str
    def __init__(self, runs: _Optional[_Iterable[_Union[_workflow_pb2.WorkflowRun, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CancelWorkflowRequest(_message.Message):
    __slots__ = ("execution_id",)
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    execution_id: str
    def __init__(self, execution_id: _Optional[str] = ...) -> None: ...

class CancelWorkflowResponse(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: _workflow_pb2.WorkflowRun
    def __init__(self, run: _Optional[_Union[_workflow_pb2.WorkflowRun, _Mapping]] = ...) -> None: ...

class PauseWorkflowRequest(_message.Message):
    __slots__ = ("execution_id",)
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    execution_id: str
    def __init__(self, execution_id: _Optional[str] = ...) -> None: ...

class PauseWorkflowResponse(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: _workflow_pb2.WorkflowRun
    def __init__(self, run: _Optional[_Union[_workflow_pb2.WorkflowRun, _Mapping]] = ...) -> None: ...

class ResumeWorkflowRequest(_message.Message):
    __slots__ = ("execution_id",)
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    execution_id: str
    def __init__(self, execution_id: _Optional[str] = ...) -> None: ...

class ResumeWorkflowResponse(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: _workflow_pb2.WorkflowRun
    def __init__(self, run: _Optional[_Union[_workflow_pb2.WorkflowRun, _Mapping]] = ...) -> None: ...
