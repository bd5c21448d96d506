"""Registry domain objects. Database rows are mapped to these at the store boundary."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from modelport.core.digest import Manifest
from modelport.core.envlock import EnvironmentLock
from modelport.core.profile import DatasetProfile
from modelport.core.signature import Signature

__all__ = [
    "AliasMove",
    "AuditEvent",
    "DatasetRef",
    "DatasetVersion",
    "GateReportRecord",
    "Lineage",
    "ModelVersion",
    "NewDatasetVersion",
    "NewModelVersion",
    "RegisteredModel",
    "Variant",
    "VariantStatus",
]

VariantStatus = Literal["verified", "failed"]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


@dataclass(frozen=True, slots=True)
class Lineage:
    """Where a version came from."""

    code_revision: str | None = None
    source: str | None = None
    training_data_fingerprint: str | None = None
    parent_run: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self._items() if v is not None}

    def _items(self) -> list[tuple[str, str | None]]:
        return [
            ("code_revision", self.code_revision),
            ("source", self.source),
            ("training_data_fingerprint", self.training_data_fingerprint),
            ("parent_run", self.parent_run),
        ]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Lineage:
        data = data or {}
        return cls(
            code_revision=data.get("code_revision"),
            source=data.get("source"),
            training_data_fingerprint=data.get("training_data_fingerprint"),
            parent_run=data.get("parent_run"),
        )


@dataclass(frozen=True, slots=True)
class DatasetRef:
    """A dataset version a model version was trained or validated on."""

    name: str
    version: int
    role: str  # "training" | "validation" | "golden"
    digest: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "role": self.role,
            "digest": self.digest,
        }


@dataclass(frozen=True, slots=True)
class RegisteredModel:
    name: str
    description: str
    tags: Mapping[str, str]
    created_at: datetime
    created_by: str
    latest_version: int | None = None
    aliases: Mapping[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "tags": dict(self.tags),
            "created_at": _iso(self.created_at),
            "created_by": self.created_by,
            "latest_version": self.latest_version,
            "aliases": dict(self.aliases),
        }


@dataclass(frozen=True, slots=True)
class NewModelVersion:
    """Everything needed to record a version; the store allocates ``number``."""

    name: str
    format: str
    manifest: Manifest
    signature: Signature | None = None
    input_example: Mapping[str, Any] | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    params: Mapping[str, str] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    description: str = ""
    lineage: Lineage = field(default_factory=Lineage)
    environment: EnvironmentLock | None = None
    profile: DatasetProfile | None = None
    trusted_types: tuple[str, ...] = ()
    runtime_config: Mapping[str, Any] = field(default_factory=dict)
    datasets: tuple[DatasetRef, ...] = ()
    created_by: str = "unknown"


@dataclass(frozen=True, slots=True)
class Variant:
    """A derived artifact of a version (e.g. its ONNX conversion), stored with the same version.

    ``verified``: ``manifest``/``digest`` name the derived files, whose outputs matched the
    original's on ``checked_rows`` rows within ``tolerance`` (largest difference
    ``max_abs_diff``). ``failed``: nothing to serve; ``reason`` says why. ``runtime_config``
    tells the runtime how to serve it under the original's output contract.
    """

    kind: str
    status: VariantStatus
    manifest: Manifest | None
    digest: str | None
    reason: str
    tolerance: float | None
    max_abs_diff: float | None
    checked_rows: int
    created_at: datetime
    runtime_config: Mapping[str, Any] = field(default_factory=dict)

    @property
    def verified(self) -> bool:
        return self.status == "verified" and self.manifest is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "status": self.status,
            "digest": self.digest,
            "size": self.manifest.total_size if self.manifest else None,
            "files": self.manifest.to_list() if self.manifest else [],
            "reason": self.reason,
            "tolerance": self.tolerance,
            "max_abs_diff": self.max_abs_diff,
            "checked_rows": self.checked_rows,
            "runtime_config": dict(self.runtime_config),
            "created_at": _iso(self.created_at),
        }


@dataclass(frozen=True, slots=True)
class ModelVersion:
    name: str
    number: int
    digest: str
    format: str
    manifest: Manifest
    signature: Signature | None
    input_example: Mapping[str, Any] | None
    metrics: Mapping[str, float]
    params: Mapping[str, str]
    tags: Mapping[str, str]
    description: str
    lineage: Lineage
    environment: EnvironmentLock | None
    profile: DatasetProfile | None
    trusted_types: tuple[str, ...]
    runtime_config: Mapping[str, Any]
    datasets: tuple[DatasetRef, ...]
    status: str
    created_by: str
    created_at: datetime
    aliases: tuple[str, ...] = ()
    variants: tuple[Variant, ...] = ()

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.number}"

    def variant(self, kind: str) -> Variant | None:
        """The recorded variant of ``kind`` (verified or failed), if any."""
        return next((v for v in self.variants if v.kind == kind), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.number,
            "ref": self.ref,
            "digest": self.digest,
            "format": self.format,
            "status": self.status,
            "aliases": list(self.aliases),
            "size": self.manifest.total_size,
            "files": self.manifest.to_list(),
            "signature": self.signature.to_dict() if self.signature else None,
            "has_input_example": self.input_example is not None,
            "metrics": dict(self.metrics),
            "params": dict(self.params),
            "tags": dict(self.tags),
            "description": self.description,
            "lineage": self.lineage.to_dict(),
            "environment": self.environment.to_dict() if self.environment else None,
            "has_profile": self.profile is not None,
            "trusted_types": list(self.trusted_types),
            "runtime_config": dict(self.runtime_config),
            "datasets": [d.to_dict() for d in self.datasets],
            "variants": [v.to_dict() for v in self.variants],
            "created_by": self.created_by,
            "created_at": _iso(self.created_at),
        }


@dataclass(frozen=True, slots=True)
class AliasMove:
    """One row of an alias's append-only history."""

    name: str
    alias: str
    seq: int
    from_version: int | None
    to_version: int | None
    actor: str
    reason: str
    at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "alias": self.alias,
            "seq": self.seq,
            "from_version": self.from_version,
            "to_version": self.to_version,
            "actor": self.actor,
            "reason": self.reason,
            "at": _iso(self.at),
        }


@dataclass(frozen=True, slots=True)
class NewDatasetVersion:
    name: str
    format: str  # "csv" | "parquet"
    manifest: Manifest
    schema: Mapping[str, str]
    profile: DatasetProfile
    rows: int
    description: str = ""
    created_by: str = "unknown"


@dataclass(frozen=True, slots=True)
class DatasetVersion:
    name: str
    number: int
    digest: str
    format: str
    manifest: Manifest
    schema: Mapping[str, str]
    profile: DatasetProfile
    rows: int
    description: str
    created_by: str
    created_at: datetime

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.number}"

    def to_dict(self, with_profile: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "version": self.number,
            "ref": self.ref,
            "digest": self.digest,
            "format": self.format,
            "rows": self.rows,
            "schema": dict(self.schema),
            "description": self.description,
            "created_by": self.created_by,
            "created_at": _iso(self.created_at),
        }
        if with_profile:
            out["profile"] = self.profile.to_dict()
        return out


@dataclass(frozen=True, slots=True)
class AuditEvent:
    id: int
    at: datetime
    actor: str
    action: str
    object_type: str
    object_name: str
    version: int | None
    details: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": _iso(self.at),
            "actor": self.actor,
            "action": self.action,
            "object_type": self.object_type,
            "object_name": self.object_name,
            "version": self.version,
            "details": dict(self.details),
        }


@dataclass(frozen=True, slots=True)
class GateReportRecord:
    """A gate report (smoke, regression, schema...) stored with the version it judged.

    ``report`` is the report's JSON document as the gate wrote it; the registry does not
    interpret it beyond storing and returning it.
    """

    id: int
    name: str
    version: int
    gate: str
    passed: bool
    report: Mapping[str, Any]
    created_by: str
    created_at: datetime

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "version": self.version,
            "ref": self.ref,
            "gate": self.gate,
            "passed": self.passed,
            "report": dict(self.report),
            "created_by": self.created_by,
            "created_at": _iso(self.created_at),
        }
