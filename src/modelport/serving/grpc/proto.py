"""The KServe V2 gRPC protocol (``grpc_predict_v2.proto``), built at import time.

No generated ``_pb2`` module: the file descriptor is written here with ``descriptor_pb2`` in a
private descriptor pool (so it never clashes with another copy of the ``inference`` package, such
as tritonclient's, in the same process). Message, field names and numbers are those of the public
proto, so any standard V2 client interoperates.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.descriptor import FileDescriptor, ServiceDescriptor
from google.protobuf.message import Message

__all__ = [
    "FILE",
    "METHODS",
    "PACKAGE",
    "SERVICE",
    "SERVICE_NAME",
    "InferParameter",
    "InferTensorContents",
    "ModelInferRequest",
    "ModelInferResponse",
    "ModelMetadataRequest",
    "ModelMetadataResponse",
    "ModelReadyRequest",
    "ModelReadyResponse",
    "ServerLiveRequest",
    "ServerLiveResponse",
    "ServerMetadataRequest",
    "ServerMetadataResponse",
    "ServerReadyRequest",
    "ServerReadyResponse",
    "message_class",
]

PACKAGE = "inference"
SERVICE_NAME = f"{PACKAGE}.GRPCInferenceService"

_F = descriptor_pb2.FieldDescriptorProto
_BOOL, _INT32, _INT64, _UINT32 = _F.TYPE_BOOL, _F.TYPE_INT32, _F.TYPE_INT64, _F.TYPE_UINT32
_UINT64, _FLOAT, _DOUBLE = _F.TYPE_UINT64, _F.TYPE_FLOAT, _F.TYPE_DOUBLE
_STRING, _BYTES, _MESSAGE = _F.TYPE_STRING, _F.TYPE_BYTES, _F.TYPE_MESSAGE
_REPEATED = _F.LABEL_REPEATED
_PARAMETER = f".{PACKAGE}.InferParameter"
_CONTENTS = f".{PACKAGE}.InferTensorContents"

# (method, request message, response message), in the order of the public service definition
METHODS: tuple[tuple[str, str, str], ...] = (
    ("ServerLive", "ServerLiveRequest", "ServerLiveResponse"),
    ("ServerReady", "ServerReadyRequest", "ServerReadyResponse"),
    ("ModelReady", "ModelReadyRequest", "ModelReadyResponse"),
    ("ServerMetadata", "ServerMetadataRequest", "ServerMetadataResponse"),
    ("ModelMetadata", "ModelMetadataRequest", "ModelMetadataResponse"),
    ("ModelInfer", "ModelInferRequest", "ModelInferResponse"),
)


def _field(
    name: str,
    number: int,
    kind: descriptor_pb2.FieldDescriptorProto.Type.ValueType,
    *,
    repeated: bool = False,
    type_name: str = "",
    oneof: int | None = None,
) -> descriptor_pb2.FieldDescriptorProto:
    field = _F(name=name, number=number, type=kind)
    field.label = _REPEATED if repeated else _F.LABEL_OPTIONAL
    if type_name:
        field.type_name = type_name
    if oneof is not None:
        field.oneof_index = oneof
    return field


def _message(
    name: str,
    *fields: descriptor_pb2.FieldDescriptorProto,
    nested: tuple[descriptor_pb2.DescriptorProto, ...] = (),
    oneofs: tuple[str, ...] = (),
) -> descriptor_pb2.DescriptorProto:
    message = descriptor_pb2.DescriptorProto(name=name)
    message.field.extend(fields)
    message.nested_type.extend(nested)
    for oneof in oneofs:
        message.oneof_decl.add(name=oneof)
    return message


def _parameters(owner: str, number: int) -> tuple[descriptor_pb2.FieldDescriptorProto, ...]:
    """``map<string, InferParameter> parameters = number`` as protoc lowers it."""
    return (
        _field(
            "parameters",
            number,
            _MESSAGE,
            repeated=True,
            type_name=f".{PACKAGE}.{owner}.ParametersEntry",
        ),
    )


def _parameters_entry() -> descriptor_pb2.DescriptorProto:
    entry = _message(
        "ParametersEntry",
        _field("key", 1, _STRING),
        _field("value", 2, _MESSAGE, type_name=_PARAMETER),
    )
    entry.options.map_entry = True
    return entry


def _tensor_fields(owner: str) -> tuple[descriptor_pb2.FieldDescriptorProto, ...]:
    """name = 1, datatype = 2, shape = 3, parameters = 4, contents = 5."""
    return (
        _field("name", 1, _STRING),
        _field("datatype", 2, _STRING),
        _field("shape", 3, _INT64, repeated=True),
        *_parameters(owner, 4),
        _field("contents", 5, _MESSAGE, type_name=_CONTENTS),
    )


def _file() -> descriptor_pb2.FileDescriptorProto:
    tensor_metadata = _message(
        "TensorMetadata",
        _field("name", 1, _STRING),
        _field("datatype", 2, _STRING),
        _field("shape", 3, _INT64, repeated=True),
    )
    metadata_type = f".{PACKAGE}.ModelMetadataResponse.TensorMetadata"
    input_tensor = _message(
        "InferInputTensor",
        *_tensor_fields("ModelInferRequest.InferInputTensor"),
        nested=(_parameters_entry(),),
    )
    requested_output = _message(
        "InferRequestedOutputTensor",
        _field("name", 1, _STRING),
        *_parameters("ModelInferRequest.InferRequestedOutputTensor", 2),
        nested=(_parameters_entry(),),
    )
    output_tensor = _message(
        "InferOutputTensor",
        *_tensor_fields("ModelInferResponse.InferOutputTensor"),
        nested=(_parameters_entry(),),
    )
    messages = [
        _message("ServerLiveRequest"),
        _message("ServerLiveResponse", _field("live", 1, _BOOL)),
        _message("ServerReadyRequest"),
        _message("ServerReadyResponse", _field("ready", 1, _BOOL)),
        _message("ModelReadyRequest", _field("name", 1, _STRING), _field("version", 2, _STRING)),
        _message("ModelReadyResponse", _field("ready", 1, _BOOL)),
        _message("ServerMetadataRequest"),
        _message(
            "ServerMetadataResponse",
            _field("name", 1, _STRING),
            _field("version", 2, _STRING),
            _field("extensions", 3, _STRING, repeated=True),
        ),
        _message("ModelMetadataRequest", _field("name", 1, _STRING), _field("version", 2, _STRING)),
        _message(
            "ModelMetadataResponse",
            _field("name", 1, _STRING),
            _field("versions", 2, _STRING, repeated=True),
            _field("platform", 3, _STRING),
            _field("inputs", 4, _MESSAGE, repeated=True, type_name=metadata_type),
            _field("outputs", 5, _MESSAGE, repeated=True, type_name=metadata_type),
            nested=(tensor_metadata,),
        ),
        _message(
            "ModelInferRequest",
            _field("model_name", 1, _STRING),
            _field("model_version", 2, _STRING),
            _field("id", 3, _STRING),
            *_parameters("ModelInferRequest", 4),
            _field(
                "inputs",
                5,
                _MESSAGE,
                repeated=True,
                type_name=f".{PACKAGE}.ModelInferRequest.InferInputTensor",
            ),
            _field(
                "outputs",
                6,
                _MESSAGE,
                repeated=True,
                type_name=f".{PACKAGE}.ModelInferRequest.InferRequestedOutputTensor",
            ),
            _field("raw_input_contents", 7, _BYTES, repeated=True),
            nested=(input_tensor, requested_output, _parameters_entry()),
        ),
        _message(
            "ModelInferResponse",
            _field("model_name", 1, _STRING),
            _field("model_version", 2, _STRING),
            _field("id", 3, _STRING),
            *_parameters("ModelInferResponse", 4),
            _field(
                "outputs",
                5,
                _MESSAGE,
                repeated=True,
                type_name=f".{PACKAGE}.ModelInferResponse.InferOutputTensor",
            ),
            _field("raw_output_contents", 6, _BYTES, repeated=True),
            nested=(output_tensor, _parameters_entry()),
        ),
        _message(
            "InferParameter",
            _field("bool_param", 1, _BOOL, oneof=0),
            _field("int64_param", 2, _INT64, oneof=0),
            _field("string_param", 3, _STRING, oneof=0),
            oneofs=("parameter_choice",),
        ),
        _message(
            "InferTensorContents",
            _field("bool_contents", 1, _BOOL, repeated=True),
            _field("int_contents", 2, _INT32, repeated=True),
            _field("int64_contents", 3, _INT64, repeated=True),
            _field("uint_contents", 4, _UINT32, repeated=True),
            _field("uint64_contents", 5, _UINT64, repeated=True),
            _field("fp32_contents", 6, _FLOAT, repeated=True),
            _field("fp64_contents", 7, _DOUBLE, repeated=True),
            _field("bytes_contents", 8, _BYTES, repeated=True),
        ),
    ]
    proto = descriptor_pb2.FileDescriptorProto(
        name="modelport/grpc_predict_v2.proto", package=PACKAGE, syntax="proto3"
    )
    proto.message_type.extend(messages)
    service = proto.service.add(name="GRPCInferenceService")
    for method, request, response in METHODS:
        service.method.add(
            name=method, input_type=f".{PACKAGE}.{request}", output_type=f".{PACKAGE}.{response}"
        )
    return proto


_POOL = descriptor_pool.DescriptorPool()
FILE: FileDescriptor = _POOL.AddSerializedFile(_file().SerializeToString())
SERVICE: ServiceDescriptor = FILE.services_by_name["GRPCInferenceService"]


def message_class(name: str) -> Any:
    """The message class of ``inference.<name>`` (nested names with dots). Typed ``Any``: its
    fields are built at run time from the descriptor, so no stub can know them (types-protobuf
    7 refuses field keywords on a plain ``type[Message]``)."""
    cls: type[Message] = message_factory.GetMessageClass(
        _POOL.FindMessageTypeByName(f"{PACKAGE}.{name}")
    )
    return cls


ServerLiveRequest = message_class("ServerLiveRequest")
ServerLiveResponse = message_class("ServerLiveResponse")
ServerReadyRequest = message_class("ServerReadyRequest")
ServerReadyResponse = message_class("ServerReadyResponse")
ModelReadyRequest = message_class("ModelReadyRequest")
ModelReadyResponse = message_class("ModelReadyResponse")
ServerMetadataRequest = message_class("ServerMetadataRequest")
ServerMetadataResponse = message_class("ServerMetadataResponse")
ModelMetadataRequest = message_class("ModelMetadataRequest")
ModelMetadataResponse = message_class("ModelMetadataResponse")
ModelInferRequest = message_class("ModelInferRequest")
ModelInferResponse = message_class("ModelInferResponse")
InferParameter = message_class("InferParameter")
InferTensorContents = message_class("InferTensorContents")
