"""Rows of the metadata database mapped to the frozen domain objects, and back.

Values are checked here before they reach a transaction: names through ``core.names``, JSON
documents for types JSON cannot hold. Non-finite floats inside documents (an input example with a
missing value) become JSON ``null`` on every backend; a non-finite *metric* is refused.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import RowMapping

from modelport.core.digest import Manifest
from modelport.core.envlock import EnvironmentLock
from modelport.core.errors import IntegrityError, InvalidInputError
from modelport.core.model import (
    AliasMove,
    AuditEvent,
    DatasetRef,
    DatasetVersion,
    GateReportRecord,
    Lineage,
    ModelVersion,
    NewDatasetVersion,
    NewModelVersion,
    RegisteredModel,
    Variant,
)
from modelport.core.names import validate_key, validate_name
from modelport.core.profile import DatasetProfile
from modelport.core.signature import Signature

__all__ = [
    "READY",
    "alias_move",
    "audit_event",
    "dataset_version",
    "dataset_version_values",
    "gate_report",
    "gate_report_values",
    "json_document",
    "model_version",
    "model_version_values",
    "registered_model",
    "short_key",
    "validate_actor",
    "variant",
    "variant_values",
]

READY = "ready"
MAX_ACTOR = 200
VARIANT_STATUSES = ("verified", "failed")
MAX_REPORT_CHARS = 1_000_000


def validate_actor(actor: object) -> str:
    if not isinstance(actor, str) or not actor.strip() or len(actor) > MAX_ACTOR:
        raise InvalidInputError(
            f"actor must be a non-empty string of at most {MAX_ACTOR} characters; "
            "set MODELPORT_ACTOR or pass --actor"
        )
    return actor


def json_document(value: Any, what: str) -> Any:
    """``value`` as plain JSON data (dicts with str keys, lists, str, int, finite float, null)."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidInputError(f"{what} has a non-string key {key!r}; use string keys")
            out[key] = json_document(item, what)
        return out
    if isinstance(value, list | tuple):
        return [json_document(item, what) for item in value]
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item) and getattr(value, "shape", None) == ():
        return json_document(item(), what)
    raise InvalidInputError(
        f"{what} holds a {type(value).__name__}, which cannot be stored as JSON; "
        "use strings, numbers, lists and dicts"
    )


def _keyed(values: Mapping[str, Any], kind: str) -> None:
    for key in values:
        validate_key(key, kind)


def _metrics(metrics: Mapping[str, float]) -> dict[str, float]:
    _keyed(metrics, "metric name")
    out: dict[str, float] = {}
    for key, value in metrics.items():
        number = json_document(value, f"metric {key!r}")  # NaN and infinities become None
        if isinstance(number, bool) or not isinstance(number, int | float):
            raise InvalidInputError(
                f"metric {key!r} is {value!r}; record metrics as finite numbers"
            )
        out[key] = float(number)
    return out


def short_key(value: object, kind: str, limit: int = 100) -> str:
    """A key-like value (format, dataset role) that also fits its column."""
    key = validate_key(value, kind)
    if len(key) > limit:
        raise InvalidInputError(f"{kind} is longer than {limit} characters; use a shorter one")
    return key


def _strings(values: Mapping[str, str], kind: str) -> dict[str, str]:
    _keyed(values, kind)
    for key, value in values.items():
        if not isinstance(value, str):
            raise InvalidInputError(f"{kind} {key!r} must be a string, not {type(value).__name__}")
    return dict(values)


def model_version_values(new: NewModelVersion) -> dict[str, Any]:
    """Column values of a new version (without ids, number and timestamps), validated."""
    validate_name(new.name)
    short_key(new.format, "format")
    return {
        "digest": new.manifest.digest,
        "format": new.format,
        "manifest": new.manifest.to_list(),
        "signature": new.signature.to_dict() if new.signature else None,
        "input_example": json_document(new.input_example, "input example"),
        "metrics": _metrics(new.metrics),
        "params": _strings(new.params, "param"),
        "tags": _strings(new.tags, "tag"),
        "description": str(new.description),
        "lineage": new.lineage.to_dict(),
        "environment": new.environment.to_dict() if new.environment else None,
        "profile": json_document(new.profile.to_dict(), "profile") if new.profile else None,
        "trusted_types": [str(t) for t in new.trusted_types],
        "runtime_config": json_document(dict(new.runtime_config), "runtime config"),
        "status": READY,
        "created_by": validate_actor(new.created_by),
    }


def dataset_version_values(new: NewDatasetVersion) -> dict[str, Any]:
    validate_name(new.name, "dataset name")
    short_key(new.format, "format")
    if isinstance(new.rows, bool) or not isinstance(new.rows, int) or new.rows < 0:
        raise InvalidInputError(f"dataset {new.name!r}: rows must be a non-negative integer")
    return {
        "digest": new.manifest.digest,
        "format": new.format,
        "manifest": new.manifest.to_list(),
        "schema": _strings(new.schema, "schema column"),
        "profile": json_document(new.profile.to_dict(), "profile"),
        "rows": new.rows,
        "description": str(new.description),
        "created_by": validate_actor(new.created_by),
    }


def _manifest(items: Iterable[Mapping[str, object]], digest: str, ref: str) -> Manifest:
    manifest = Manifest.from_list(items)
    if manifest.digest != digest:
        raise IntegrityError(
            f"the stored file list of {ref} does not match its digest {digest}; the metadata "
            "database was changed outside modelport, restore it from a backup"
        )
    return manifest


def _optional_float(value: object, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInputError(f"{what} must be a finite number or None, not {value!r}")
    return float(value)


def variant_values(variant: Variant, ref: str) -> dict[str, Any]:
    """Column values of a variant of ``ref`` (without ids and timestamp), validated."""
    short_key(variant.kind, "variant kind", 32)
    if variant.status not in VARIANT_STATUSES:
        raise InvalidInputError(
            f"variant status must be one of {', '.join(VARIANT_STATUSES)}, not {variant.status!r}"
        )
    manifest = variant.manifest
    if variant.status == "verified" and manifest is None:
        raise InvalidInputError(f"a verified {variant.kind} variant of {ref} needs its files")
    if manifest is not None and variant.digest != manifest.digest:
        raise IntegrityError(
            f"the {variant.kind} variant of {ref} gives digest {variant.digest} but its files "
            f"hash to {manifest.digest}"
        )
    rows = variant.checked_rows
    if isinstance(rows, bool) or not isinstance(rows, int) or rows < 0:
        raise InvalidInputError("checked rows of a variant must be a non-negative integer")
    return {
        "kind": variant.kind,
        "status": variant.status,
        "manifest": manifest.to_list() if manifest is not None else None,
        "digest": manifest.digest if manifest is not None else None,
        "reason": str(variant.reason),
        "tolerance": _optional_float(variant.tolerance, "variant tolerance"),
        "max_abs_diff": _optional_float(variant.max_abs_diff, "variant max_abs_diff"),
        "checked_rows": rows,
        "runtime_config": json_document(dict(variant.runtime_config), "variant runtime config"),
    }


def gate_report_values(
    gate: str, passed: bool, report: Mapping[str, Any], ref: str
) -> dict[str, Any]:
    """Column values of a gate report of ``ref`` (without ids and timestamp), validated."""
    short_key(gate, "gate name", 32)
    if not isinstance(passed, bool):
        raise InvalidInputError(f"the {gate} report of {ref}: passed must be True or False")
    if not isinstance(report, Mapping):
        raise InvalidInputError(f"the {gate} report of {ref} must be a JSON object (a dict)")
    document = json_document(dict(report), f"the {gate} report of {ref}")
    if len(json.dumps(document)) > MAX_REPORT_CHARS:
        raise InvalidInputError(
            f"the {gate} report of {ref} is larger than {MAX_REPORT_CHARS} characters of JSON; "
            "keep per-row data out of reports"
        )
    return {"gate": gate, "passed": passed, "report": document}


def gate_report(name: str, number: int, row: RowMapping) -> GateReportRecord:
    return GateReportRecord(
        id=row["id"],
        name=name,
        version=number,
        gate=row["gate"],
        passed=bool(row["passed"]),
        report=dict(row["report"]),
        created_by=row["created_by"],
        created_at=row["created_at"],
    )


def variant(ref: str, row: RowMapping) -> Variant:
    digest = row["digest"]
    manifest = None
    if row["manifest"] is not None:
        manifest = _manifest(row["manifest"], digest, f"the {row['kind']} variant of {ref}")
    return Variant(
        kind=row["kind"],
        status=row["status"],
        manifest=manifest,
        digest=digest,
        reason=row["reason"],
        tolerance=row["tolerance"],
        max_abs_diff=row["max_abs_diff"],
        checked_rows=row["checked_rows"],
        created_at=row["created_at"],
        runtime_config=dict(row["runtime_config"]),
    )


def model_version(
    name: str,
    row: RowMapping,
    datasets: Sequence[DatasetRef] = (),
    aliases: Iterable[str] = (),
    variants: Sequence[Variant] = (),
) -> ModelVersion:
    ref = f"{name}:{row['number']}"
    return ModelVersion(
        name=name,
        number=row["number"],
        digest=row["digest"],
        format=row["format"],
        manifest=_manifest(row["manifest"], row["digest"], ref),
        signature=Signature.from_dict(row["signature"]) if row["signature"] else None,
        input_example=row["input_example"],
        metrics=dict(row["metrics"]),
        params=dict(row["params"]),
        tags=dict(row["tags"]),
        description=row["description"],
        lineage=Lineage.from_dict(row["lineage"]),
        environment=EnvironmentLock.from_dict(row["environment"]) if row["environment"] else None,
        profile=DatasetProfile.from_dict(row["profile"]) if row["profile"] else None,
        trusted_types=tuple(row["trusted_types"]),
        runtime_config=dict(row["runtime_config"]),
        datasets=tuple(datasets),
        status=row["status"],
        created_by=row["created_by"],
        created_at=row["created_at"],
        aliases=tuple(sorted(aliases)),
        variants=tuple(sorted(variants, key=lambda v: v.kind)),
    )


def registered_model(
    row: RowMapping, latest: int | None, aliases: Mapping[str, int]
) -> RegisteredModel:
    return RegisteredModel(
        name=row["name"],
        description=row["description"],
        tags=dict(row["tags"]),
        created_at=row["created_at"],
        created_by=row["created_by"],
        latest_version=latest,
        aliases=dict(sorted(aliases.items())),
    )


def dataset_version(name: str, row: RowMapping) -> DatasetVersion:
    ref = f"dataset {name}:{row['number']}"
    return DatasetVersion(
        name=name,
        number=row["number"],
        digest=row["digest"],
        format=row["format"],
        manifest=_manifest(row["manifest"], row["digest"], ref),
        schema=dict(row["schema"]),
        profile=DatasetProfile.from_dict(row["profile"]),
        rows=row["rows"],
        description=row["description"],
        created_by=row["created_by"],
        created_at=row["created_at"],
    )


def alias_move(name: str, row: RowMapping) -> AliasMove:
    return AliasMove(
        name=name,
        alias=row["alias"],
        seq=row["seq"],
        from_version=row["from_version"],
        to_version=row["to_version"],
        actor=row["actor"],
        reason=row["reason"],
        at=row["at"],
    )


def audit_event(row: RowMapping) -> AuditEvent:
    at: datetime = row["at"]
    return AuditEvent(
        id=row["id"],
        at=at,
        actor=row["actor"],
        action=row["action"],
        object_type=row["object_type"],
        object_name=row["object_name"],
        version=row["version"],
        details=dict(row["details"]),
    )
