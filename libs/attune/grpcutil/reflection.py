"""Server reflection on every server, as grpc.reflection.v1 and grpc.reflection.v1alpha.

grpcio-reflection (1.78 here, and 1.85 still) ships only v1alpha, while grpcurl 1.9 and newer
clients ask for v1 first. The two protocols are the same messages under another package name,
field for field, so v1 is served by the same servicer, its requests decoded and its responses
encoded with the v1alpha classes (the bytes are identical). v1's own descriptor — v1alpha's,
renamed — is added to the default descriptor pool, so that reflection can describe v1 too.
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import FileDescriptor
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_reflection.v1alpha._async import ReflectionServicer

V1ALPHA_SERVICE_NAME = "grpc.reflection.v1alpha.ServerReflection"
V1_SERVICE_NAME = "grpc.reflection.v1.ServerReflection"
#: The full name of v1's one method, as the authorization policy names it.
V1_METHOD = f"/{V1_SERVICE_NAME}/ServerReflectionInfo"
_V1_FILE = "grpc/reflection/v1/reflection.proto"
_V1ALPHA_PREFIX = ".grpc.reflection.v1alpha."
_V1_PREFIX = ".grpc.reflection.v1."


def v1_file_descriptor() -> FileDescriptor:
    """grpc/reflection/v1/reflection.proto in the default pool (added on first use)."""
    pool = descriptor_pool.Default()  # type: ignore[no-untyped-call]
    try:
        found: FileDescriptor = pool.FindFileByName(_V1_FILE)
        return found
    except KeyError:
        pass
    proto = descriptor_pb2.FileDescriptorProto()
    reflection_pb2.DESCRIPTOR.CopyToProto(proto)  # type: ignore[no-untyped-call]
    proto.name = _V1_FILE
    proto.package = "grpc.reflection.v1"
    proto.ClearField("options")
    for message in proto.message_type:
        for field in message.field:
            if field.HasField("type_name"):  # set only on message fields: setting it adds it
                field.type_name = _renamed(field.type_name)
    for service in proto.service:
        for method in service.method:
            method.input_type = _renamed(method.input_type)
            method.output_type = _renamed(method.output_type)
    pool.AddSerializedFile(proto.SerializeToString())
    added: FileDescriptor = pool.FindFileByName(_V1_FILE)
    return added


def _renamed(type_name: str) -> str:
    if type_name.startswith(_V1ALPHA_PREFIX):
        return _V1_PREFIX + type_name.removeprefix(_V1ALPHA_PREFIX)
    return type_name


def enable_reflection(service_names: Sequence[str], server: grpc.aio.Server) -> None:
    """Serves reflection v1 and v1alpha on `server`, listing `service_names` and both of them."""
    v1_file_descriptor()
    servicer = ReflectionServicer([*service_names, V1_SERVICE_NAME, V1ALPHA_SERVICE_NAME])
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
    v1 = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(V1_SERVICE_NAME, {"ServerReflectionInfo": v1}),)
    )
