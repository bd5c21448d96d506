"""The KServe V2 (Open Inference Protocol) gRPC service."""

from modelport.serving.grpc.lifespan import grpc_lifespan
from modelport.serving.grpc.proto import SERVICE, SERVICE_NAME
from modelport.serving.grpc.service import (
    GrpcServer,
    InferenceServicer,
    method_handlers,
    status_code,
)

__all__ = [
    "SERVICE",
    "SERVICE_NAME",
    "GrpcServer",
    "InferenceServicer",
    "grpc_lifespan",
    "method_handlers",
    "status_code",
]
