"""Protocol-neutral values of the data plane: named tensors, requests, predictions, model info."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from modelport.core.signature import Signature

__all__ = [
    "ModelInfo",
    "Prediction",
    "RequestedOutput",
    "Tensor",
    "VersionState",
    "VersionStatus",
]

VersionState = Literal["loading", "ready", "failed", "unloading"]


@dataclass(frozen=True, slots=True)
class Tensor:
    """A named array with its Open Inference Protocol datatype (``FP32``, ``BYTES``, ...)."""

    name: str
    datatype: str
    data: np.ndarray
    parameters: Mapping[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.data.shape)


@dataclass(frozen=True, slots=True)
class RequestedOutput:
    name: str
    parameters: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Prediction:
    """What one model version answered for a batch of ``rows`` rows."""

    model: str
    version: int
    outputs: Mapping[str, np.ndarray]
    rows: int


@dataclass(frozen=True, slots=True)
class VersionStatus:
    """One served model version as the health endpoints and ``modelport`` report it."""

    model: str
    version: int
    state: VersionState
    reason: str = ""
    default: bool = False
    platform: str = ""
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """Metadata of a served version (V2 model metadata, TF Serving metadata, MLflow schema)."""

    name: str
    version: int
    versions: tuple[int, ...]
    platform: str
    signature: Signature | None
    outputs: tuple[str, ...]
    digest: str
