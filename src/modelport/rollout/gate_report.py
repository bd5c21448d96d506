"""Gate reports: what a gate found, one judged figure (``Check``) per line.

A check without a threshold is informational and always passes. A report passes when it has at
least one check and every check passed. Reports serialise to JSON (``to_dict``/``from_dict``,
non-finite figures become null) and render as table rows under ``REPORT_HEADERS``. The schema
compatibility gate, a single check, lives here too.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from modelport.rollout.schema_compat import CompatReport

__all__ = [
    "REPORT_HEADERS",
    "Check",
    "GateReport",
    "Op",
    "evaluate_schema",
    "finite",
    "fmt",
    "schema_check",
    "shorten",
]

Op = Literal["<=", ">=", "==", ""]
REPORT_HEADERS = ("check", "figure", "threshold", "result", "detail")


@dataclass(frozen=True, slots=True)
class Check:
    """One judged figure. ``threshold`` None: informational (it always passes)."""

    name: str
    figure: float | None
    threshold: float | None
    passed: bool
    detail: str = ""
    op: Op = ""
    unit: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "figure": finite(self.figure),
            "threshold": finite(self.threshold),
            "op": self.op,
            "unit": self.unit,
            "passed": self.passed,
            "detail": self.detail,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Check:
        return cls(
            name=str(data["name"]),
            figure=data.get("figure"),
            threshold=data.get("threshold"),
            passed=bool(data["passed"]),
            detail=str(data.get("detail", "")),
            op=data.get("op", ""),
            unit=str(data.get("unit", "")),
        )

    def row(self) -> list[str]:
        """The check as table cells: check, figure, threshold, result, detail."""
        threshold = "-" if self.threshold is None else f"{self.op} {fmt(self.threshold)}"
        if self.threshold is not None and self.unit:
            threshold += f" {self.unit}"
        figure = fmt(self.figure) + (
            f" {self.unit}" if self.unit and self.figure is not None else ""
        )
        if not self.passed:
            result = "FAIL"
        elif self.threshold is None:
            result = "info"
        else:
            result = "ok"
        return [self.name, figure, threshold, result, self.detail]


@dataclass(frozen=True, slots=True)
class GateReport:
    """What a gate found for ``candidate`` (against ``baseline`` when it compares two)."""

    gate: str
    candidate: str
    baseline: str | None
    checks: tuple[Check, ...]
    info: Mapping[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)

    @property
    def failed(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if not c.passed)

    def check(self, name: str) -> Check | None:
        return next((c for c in self.checks if c.name == name), None)

    def summary(self) -> str:
        """One line: ``regression gate FAILED for fraud:3 vs fraud:1: accuracy_delta``."""
        against = f" vs {self.baseline}" if self.baseline else ""
        if self.passed:
            return f"{self.gate} gate passed for {self.candidate}{against}"
        names = ", ".join(c.name for c in self.failed) or "no checks ran"
        return f"{self.gate} gate FAILED for {self.candidate}{against}: {names}"

    def rows(self) -> list[list[str]]:
        """The checks as table rows under ``REPORT_HEADERS``."""
        return [c.row() for c in self.checks]

    def to_dict(self) -> dict[str, Any]:
        return {
            "gate": self.gate,
            "candidate": self.candidate,
            "baseline": self.baseline,
            "passed": self.passed,
            "checks": [c.to_dict() for c in self.checks],
            "info": dict(self.info),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GateReport:
        return cls(
            gate=str(data["gate"]),
            candidate=str(data["candidate"]),
            baseline=data.get("baseline"),
            checks=tuple(Check.from_dict(c) for c in data.get("checks", [])),
            info=dict(data.get("info") or {}),
        )


# -- schema -------------------------------------------------------------------------------------
def schema_check(compat: CompatReport, allow_breaking: bool = False) -> Check:
    """``schema``: the number of breaking changes, which must be 0 unless explicitly allowed."""
    breaking = compat.breaking_changes
    if not breaking:
        compatible = sum(1 for c in compat.changes if c.severity == "compatible")
        detail = "no input changes" if not compatible else f"{compatible} compatible input changes"
        return Check("schema", 0, 0, True, detail, "==")
    shown = "; ".join(c.detail for c in breaking[:3]) + (" ..." if len(breaking) > 3 else "")
    if allow_breaking:
        return Check("schema", len(breaking), None, True, shorten(f"allowed: {shown}"))
    detail = f"{shown}; fix the candidate or allow breaking changes explicitly"
    return Check("schema", len(breaking), 0, False, shorten(detail), "==")


def evaluate_schema(
    compat: CompatReport, candidate: str, current: str, allow_breaking: bool = False
) -> GateReport:
    """The schema compatibility gate on its own."""
    return GateReport(
        "schema",
        candidate,
        current,
        (schema_check(compat, allow_breaking),),
        {"schema": compat.to_dict()},
    )


# -- helpers ------------------------------------------------------------------------------------
def finite(value: float | None) -> float | None:
    """``value`` as a float, None when missing or not finite (JSON has no NaN)."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def fmt(value: float | None) -> str:
    """A figure for people: whole numbers as such, others to 4 significant digits."""
    if value is None:
        return "-"
    number = float(value)
    if number.is_integer() and abs(number) < 1e15:
        return str(int(number))
    return f"{number:.4g}"


def shorten(text: str, limit: int = 300) -> str:
    """``text`` cut to ``limit`` characters with an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
