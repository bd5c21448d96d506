"""The one runtime contract every model format implements.

A runtime is constructed with a ``LoadContext`` (constructors only store it), does its I/O in
``load()``, answers ``predict()`` with arrays or frames, and releases memory in ``unload()``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from modelport.core.signature import Signature

__all__ = ["LoadContext", "Runtime", "RuntimeMetadata", "SaveResult"]


@dataclass(frozen=True, slots=True)
class LoadContext:
    """What a runtime needs to load one verified artifact directory."""

    path: Path
    format: str
    config: Mapping[str, Any] = field(default_factory=dict)
    signature: Signature | None = None
    trusted_types: tuple[str, ...] = ()
    trust_pickle: bool = False
    threads: int | None = None


@dataclass(frozen=True, slots=True)
class RuntimeMetadata:
    format: str
    platform: str  # V2 style "<framework>_<format>", e.g. "sklearn_skops", "onnx_onnxv1"
    framework_version: str
    can_batch: bool
    outputs: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SaveResult:
    """What saving an in-memory model produced in a directory."""

    format: str
    config: Mapping[str, Any]
    untrusted_types: tuple[str, ...] = ()
    framework_packages: tuple[str, ...] = ()


@runtime_checkable
class Runtime(Protocol):
    format: str

    @property
    def loaded(self) -> bool: ...

    def load(self) -> None: ...

    def predict(self, inputs: Any, params: Mapping[str, Any] | None = None) -> Any:
        """Predict on a batch: a DataFrame, an ndarray or a dict of ndarrays.

        Returns an ndarray, a dict of ndarrays (named outputs) or a DataFrame.
        """
        ...

    def unload(self) -> None: ...

    def metadata(self) -> RuntimeMetadata: ...
