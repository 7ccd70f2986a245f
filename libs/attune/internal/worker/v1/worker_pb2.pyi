from attune.common.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Hello(_message.Message):
    __slots__ = ("worker_id", "hostname", "runtimes", "capacity", "execution_ids")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    RUNTIMES_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_IDS_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    hostname: str
    runtimes: _containers.RepeatedScalarFieldContainer[str]
    capacity: int
    execution_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, worker_id: _Optional[str] = ..., hostname: _Optional[str] = ..., runtimes: _Optional[_Iterable[str]] = ..., capacity: _Optional[int] = ..., execution_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StartedExecution(_message.Message):
    __slots__ = ("execution_id", "started_at")
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    execution_id: str
    started_at: float
    def __init__(self, execution_id: _Optional[str] = ..., started_at: _Optional[float] = ...) -> None: ...

class Started(_message.Message):
    __slots__ = ("executions",)
    EXECUTIONS_FIELD_NUMBER: _ClassVar[int]
    executions: _containers.RepeatedCompositeFieldContainer[StartedExecution]
    def __init__(self, executions: _Optional[_Iterable[_Union[StartedExecution, _Mapping]]] = ...) -> None: ...

class Released(_message.Message):
    __slots__ = ("execution_ids",)
    EXECUTION_IDS_FIELD_NUMBER: _ClassVar[int]
    execution_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, execution_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class LogChunk(_message.Message):
    __slots__ = ("execution_id", "seq", "stream", "written_at", "data")
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    WRITTEN_AT_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    execution_id: str
    seq: int
    stream: str
    written_at: float
    data: bytes
    def __init__(self, execution_id: _Optional[str] = ..., seq: _Optional[int] = ..., stream: _Optional[str] = ..., written_at: _Optional[float] = ..., data: _Optional[bytes] = ...) -> None: ...

class Logs(_message.Message):
    __slots__ = ("chunks",)
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    chunks: _containers.RepeatedCompositeFieldContainer[LogChunk]
    def __init__(self, chunks: _Optional[_Iterable[_Union[LogChunk, _Mapping]]] = ...) -> None: ...

class Leaving(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ConnectRequest(_message.Message):
    __slots__ = ("hello", "heartbeat", "started", "released", "logs", "leaving")
    HELLO_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    STARTED_FIELD_NUMBER: _ClassVar[int]
    RELEASED_FIELD_NUMBER: _ClassVar[int]
    LOGS_FIELD_NUMBER: _ClassVar[int]
    LEAVING_FIELD_NUMBER: _ClassVar[int]
    hello: Hello
    heartbeat: Heartbeat
    started: Started
    released: Released
    logs: Logs
    leaving: Leaving
    def __init__(self, hello: _Optional[_Union[Hello, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ..., started: _Optional[_Union[Started, _Mapping]] = ..., released: _Optional[_Union[Released, _Mapping]] = ..., logs: _Optional[_Union[Logs, _Mapping]] = ..., leaving: _Optional[_Union[Leaving, _Mapping]] = ...) -> None: ...

class Assignment(_message.Message):
    __slots__ = ("execution_id", "action_ref", "runtime", "entry_point", "pack_ref", "pack_digest", "parameters_json", "secret_names", "timeout_seconds", "trace", "parent_id", "link")
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_REF_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_FIELD_NUMBER: _ClassVar[int]
    ENTRY_POINT_FIELD_NUMBER: _ClassVar[int]
    PACK_REF_FIELD_NUMBER: _ClassVar[int]
    PACK_DIGEST_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_JSON_FIELD_NUMBER: _ClassVar[int]
    SECRET_NAMES_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    TRACE_FIELD_NUMBER: _ClassVar[int]
    PARENT_ID_FIELD_NUMBER: _ClassVar[int]
    LINK_FIELD_NUMBER: _ClassVar[int]
    execution_id: str
    action_ref: str
    runtime: str
    entry_point: str
    pack_ref: str
    pack_digest: str
    parameters_json: bytes
    secret_names: _containers.RepeatedScalarFieldContainer[str]
    timeout_seconds: float
    trace: _common_pb2.TraceContext
    parent_id: str
    link: _common_pb2.WorkflowLink
    def __init__(self, execution_id: _Optional[str] = ..., action_ref: _Optional[str] = ..., runtime: _Optional[str] = ..., entry_point: _Optional[str] = ..., pack_ref: _Optional[str] = ..., pack_digest: _Optional[str] = ..., parameters_json: _Optional[bytes] = ..., secret_names: _Optional[_Iterable[str]] = ..., timeout_seconds: _Optional[float] = ..., trace: _Optional[_Union[_common_pb2.TraceContext, _Mapping]] = ..., parent_id: _Optional[str] = ..., link: _Optional[_Union[_common_pb2.WorkflowLink, _Mapping]] = ...) -> None: ...

class Assignments(_message.Message):
    __slots__ = ("assignments",)
    ASSIGNMENTS_FIELD_NUMBER: _ClassVar[int]
    assignments: _containers.RepeatedCompositeFieldContainer[Assignment]
    def __init__(self, assignments: _Optional[_Iterable[_Union[Assignment, _Mapping]]] = ...) -> None: ...

class Cancellations(_message.Message):
    __slots__ = ("execution_ids",)
    EXECUTION_IDS_FIELD_NUMBER: _ClassVar[int]
    execution_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, execution_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class Welcome(_message.Message):
    __slots__ = ("scheduler_id",)
    SCHEDULER_ID_FIELD_NUMBER: _ClassVar[int]
    scheduler_id: str
    def __init__(self, scheduler_id: _Optional[str] = ...) -> None: ...

class LogAck(_message.Message):
    __slots__ = ("execution_id", "seq")
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    execution_id: str
    seq: int
    def __init__(self, execution_id: _Optional[str] = ..., seq: _Optional[int] = ...) -> None: ...

class LogAcks(_message.Message):
    __slots__ = ("acks",)
    ACKS_FIELD_NUMBER: _ClassVar[int]
    acks: _containers.RepeatedCompositeFieldContainer[LogAck]
    def __init__(self, acks: _Optional[_Iterable[_Union[LogAck, _Mapping]]] = ...) -> None: ...

class ConnectResponse(_message.Message):
    __slots__ = ("welcome", "assignments", "cancellations", "log_acks")
    WELCOME_FIELD_NUMBER: _ClassVar[int]
    ASSIGNMENTS_FIELD_NUMBER: _ClassVar[int]
    CANCELLATIONS_FIELD_NUMBER: _ClassVar[int]
    LOG_ACKS_FIELD_NUMBER: _ClassVar[int]
    welcome: Welcome
    assignments: Assignments
    cancellations: Cancellations
    log_acks: LogAcks
    def __init__(self, welcome: _Optional[_Union[Welcome, _Mapping]] = ..., assignments: _Optional[_Union[Assignments, _Mapping]] = ..., cancellations: _Optional[_Union[Cancellations, _Mapping]] = ..., log_acks: _Optional[_Union[LogAcks, _Mapping]] = ...) -> None: ...
