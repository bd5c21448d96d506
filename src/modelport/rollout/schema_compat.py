"""Schema compatibility: can the candidate accept every request the current version accepts?

``check_compatibility(current, candidate)`` lists each difference between two signatures with a
severity:

- ``breaking``: some request the current version takes would be refused or misread by the
  candidate: an input removed (requests naming it are refused), retyped to a dtype that cannot
  hold every value of the old one (``float64 → float32``, ``float → int``, ``int → string``),
  reshaped so an old shape no longer fits, a new required input, an optional input made
  required, or a change of signature kind (``columns`` ↔ ``tensors``);
- ``compatible``: the contract widened: a lossless widening (``int32 → int64``,
  ``float32 → float64``, ``int → float``, ``bool → int``: numpy's *safe* casts), a fixed dimension
  made variable, a required input made optional, a new optional input;
- ``info``: output changes. Clients may rely on outputs, but the candidate can still answer;
  the regression gate judges the answers themselves.

A version without a signature cannot be checked and counts as breaking (``signature_missing``):
a gate must not pass on what it could not see. Pass ``allow_breaking`` to the gate to accept it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from modelport.core.signature import NUMERIC_DTYPES, FieldSpec, Signature

__all__ = ["ChangeKind", "CompatReport", "SchemaChange", "Severity", "check_compatibility"]

Severity = Literal["breaking", "compatible", "info"]
ChangeKind = Literal[
    "signature_missing",
    "kind_changed",
    "input_removed",
    "input_retyped",
    "input_widened",
    "input_reshaped",
    "input_shape_relaxed",
    "input_now_required",
    "input_now_optional",
    "required_input_added",
    "optional_input_added",
    "output_removed",
    "output_added",
    "output_retyped",
    "output_reshaped",
]

_NUMERIC = NUMERIC_DTYPES


@dataclass(frozen=True, slots=True)
class SchemaChange:
    """One difference between the current and the candidate signature."""

    kind: ChangeKind
    field: str | None
    severity: Severity
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "field": self.field,
            "severity": self.severity,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class CompatReport:
    """Every change from the current signature to the candidate's, inputs first."""

    changes: tuple[SchemaChange, ...]

    @property
    def breaking(self) -> bool:
        return any(c.severity == "breaking" for c in self.changes)

    @property
    def breaking_changes(self) -> tuple[SchemaChange, ...]:
        return tuple(c for c in self.changes if c.severity == "breaking")

    def to_dict(self) -> dict[str, Any]:
        return {"breaking": self.breaking, "changes": [c.to_dict() for c in self.changes]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CompatReport:
        return cls(
            tuple(
                SchemaChange(c["kind"], c.get("field"), c["severity"], c.get("detail", ""))
                for c in data.get("changes", [])
            )
        )


def check_compatibility(current: Signature | None, candidate: Signature | None) -> CompatReport:
    """The changes from ``current`` (what clients send today) to ``candidate``."""
    if current is None or candidate is None:
        which = "current version" if current is None else "candidate"
        return CompatReport(
            (
                SchemaChange(
                    "signature_missing",
                    None,
                    "breaking",
                    f"the {which} has no signature, so compatibility cannot be checked; "
                    "register it with an input example",
                ),
            )
        )
    changes: list[SchemaChange] = []
    if current.kind != candidate.kind:
        changes.append(
            SchemaChange(
                "kind_changed",
                None,
                "breaking",
                f"inputs change from {current.kind} to {candidate.kind}",
            )
        )
    changes.extend(_inputs(current.inputs, candidate.inputs))
    changes.extend(_outputs(current.outputs, candidate.outputs))
    return CompatReport(tuple(changes))


def _inputs(current: tuple[FieldSpec, ...], candidate: tuple[FieldSpec, ...]) -> list[SchemaChange]:
    out: list[SchemaChange] = []
    new = {f.name: f for f in candidate}
    for old in current:
        spec = new.get(old.name)
        if spec is None:
            out.append(
                SchemaChange(
                    "input_removed",
                    old.name,
                    "breaking",
                    f"input {old.name!r} ({old.dtype}) is gone; requests that send it are refused",
                )
            )
            continue
        out.extend(_retyped(old, spec))
        out.extend(_reshaped(old, spec))
        if old.optional and not spec.optional:
            out.append(
                SchemaChange(
                    "input_now_required",
                    old.name,
                    "breaking",
                    f"input {old.name!r} becomes required; requests without it are refused",
                )
            )
        elif spec.optional and not old.optional:
            out.append(
                SchemaChange(
                    "input_now_optional", old.name, "compatible", f"{old.name!r} becomes optional"
                )
            )
    known = {f.name for f in current}
    for spec in candidate:
        if spec.name in known:
            continue
        if spec.optional:
            out.append(
                SchemaChange(
                    "optional_input_added",
                    spec.name,
                    "compatible",
                    f"new optional input {spec.name!r} ({spec.dtype})",
                )
            )
        else:
            out.append(
                SchemaChange(
                    "required_input_added",
                    spec.name,
                    "breaking",
                    f"new required input {spec.name!r} ({spec.dtype}); today's requests lack it",
                )
            )
    return out


def widens(old: str, new: str) -> bool:
    """Whether every value of dtype ``old`` is a value of ``new`` (numpy's safe casts)."""
    if old == new:
        return True
    if old in _NUMERIC and new in _NUMERIC:
        return bool(np.can_cast(np.dtype(old), np.dtype(new), casting="safe"))
    return False


def _retyped(old: FieldSpec, new: FieldSpec) -> list[SchemaChange]:
    if old.dtype == new.dtype:
        return []
    if widens(old.dtype, new.dtype):
        return [
            SchemaChange(
                "input_widened",
                old.name,
                "compatible",
                f"input {old.name!r} widens from {old.dtype} to {new.dtype}",
            )
        ]
    return [
        SchemaChange(
            "input_retyped",
            old.name,
            "breaking",
            f"input {old.name!r} changes from {old.dtype} to {new.dtype}, "
            "which cannot hold every value it took",
        )
    ]


def _shape(shape: tuple[int, ...] | None) -> str:
    return "any" if shape is None else str(list(shape))


def _reshaped(old: FieldSpec, new: FieldSpec) -> list[SchemaChange]:
    if old.shape == new.shape or new.shape is None:
        if old.shape != new.shape:
            return [
                SchemaChange(
                    "input_shape_relaxed",
                    old.name,
                    "compatible",
                    f"input {old.name!r} takes any shape (was {_shape(old.shape)})",
                )
            ]
        return []
    fits = (
        old.shape is not None
        and len(old.shape) == len(new.shape)
        and all(n in (-1, o) for o, n in zip(old.shape, new.shape, strict=True))
    )
    change = f"input {old.name!r} shape {_shape(old.shape)} -> {_shape(new.shape)}"
    if fits:
        return [SchemaChange("input_shape_relaxed", old.name, "compatible", change)]
    return [
        SchemaChange(
            "input_reshaped", old.name, "breaking", change + "; today's shapes no longer fit"
        )
    ]


def _outputs(
    current: tuple[FieldSpec, ...], candidate: tuple[FieldSpec, ...]
) -> list[SchemaChange]:
    out: list[SchemaChange] = []
    new = {f.name: f for f in candidate}
    for old in current:
        spec = new.get(old.name)
        if spec is None:
            out.append(
                SchemaChange("output_removed", old.name, "info", f"output {old.name!r} is gone")
            )
            continue
        if spec.dtype != old.dtype:
            out.append(
                SchemaChange(
                    "output_retyped",
                    old.name,
                    "info",
                    f"output {old.name!r} changes from {old.dtype} to {spec.dtype}",
                )
            )
        if spec.shape != old.shape:
            out.append(
                SchemaChange(
                    "output_reshaped",
                    old.name,
                    "info",
                    f"output {old.name!r} shape {_shape(old.shape)} -> {_shape(spec.shape)}",
                )
            )
    known = {f.name for f in current}
    out.extend(
        SchemaChange("output_added", f.name, "info", f"new output {f.name!r} ({f.dtype})")
        for f in candidate
        if f.name not in known
    )
    return out
