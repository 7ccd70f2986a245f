from attune.registry.v1 import registry_pb2 as _registry_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetPackFilesRequest(_message.Message):
    __slots__ = ("digest",)
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    digest: str
    def __init__(self, digest: _Optional[str] = ...) -> None: ...

class GetPackFilesResponse(_message.Message):
    __slots__ = ("pack_ref", "files")
    PACK_REF_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    pack_ref: str
    files: _containers.RepeatedCompositeFieldContainer[_registry_pb2.PackFile]
    def __init__(self, pack_ref: _Optional[str] = ..., files: _Optional[_Iterable[_Union[_registry_pb2.PackFile, _Mapping]]] = ...) -> None: ...
