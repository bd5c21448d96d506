"""Gate verdicts as pure functions of measured figures: smoke and regression.

A gate gives a ``GateReport`` (``modelport.rollout.gate_report``): one ``Check`` per figure, its
measured value, the threshold it is held to, whether it passed and a sentence saying why.
Nothing here loads a model or reads a clock: ``modelport.api.gates`` measures, these functions
judge. The schema compatibility check is ``gate_report.schema_check``.

Regression figures (``evaluate_regression``):

- metric deltas, candidate minus baseline on the same labelled rows: ``accuracy`` for
  classifiers (higher is better; a missing prediction counts as wrong), ``mae`` and ``rmse`` for
  regressors (lower is better). Each is held to a ``Tolerance``: how much worse the candidate
  may be, absolute (``0.01``) or relative to the baseline's figure (``5%``). Defaults:
  accuracy 0.01, mae and rmse 5%.
- ``missing_predictions``: the candidate may not leave more rows unanswered (None/NaN) than the
  baseline.
- ``agreement``: the share of rows where both predict the same label (classifiers) or values
  within ``rtol``/``atol`` (regressors). Held to ``min_agreement``; when it is not given, to
  0.9 without labels (agreement is then the only quality signal) and to nothing with labels
  (a better model is expected to disagree where the baseline was wrong).
- ``p95_ms``: the candidate's p95 latency, held to ``p95_budget_ms`` when one is given.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from modelport.core.errors import InvalidInputError
from modelport.monitoring.accuracy import Task, accuracy_stats, labels_equal
from modelport.rollout.gate_report import (
    REPORT_HEADERS,
    Check,
    GateReport,
    evaluate_schema,
    finite,
    fmt,
    schema_check,
    shorten,
)
from modelport.rollout.schema_compat import CompatReport

__all__ = [  # the report types are defined in gate_report and re-exported: one import for gates
    "DEFAULT_MIN_AGREEMENT",
    "DEFAULT_TOLERANCES",
    "METRICS",
    "REPORT_HEADERS",
    "Check",
    "GateReport",
    "Tolerance",
    "check_fraction",
    "check_ms",
    "evaluate_regression",
    "evaluate_schema",
    "evaluate_smoke",
    "percentile",
    "schema_check",
]

METRICS: Mapping[str, tuple[str, Literal["higher", "lower"]]] = {
    "accuracy": ("classification", "higher"),
    "mae": ("regression", "lower"),
    "rmse": ("regression", "lower"),
}
DEFAULT_MIN_AGREEMENT = 0.9
_EPS = 1e-12


@dataclass(frozen=True, slots=True)
class Tolerance:
    """How much worse a metric may get: absolute, or a fraction of the baseline's figure."""

    value: float
    relative: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.value, bool) or not (math.isfinite(self.value) and self.value >= 0):
            raise InvalidInputError(f"a tolerance must be a finite number >= 0, not {self.value!r}")

    @classmethod
    def parse(cls, text: str) -> Tolerance:
        """``"0.01"`` (absolute) or ``"5%"`` (relative to the baseline)."""
        raw = text.strip()
        relative = raw.endswith("%")
        try:
            number = float(raw[:-1] if relative else raw)
        except ValueError as exc:
            raise InvalidInputError(
                f"tolerance {text[:30]!r} must be a number (0.01) or a percentage (5%)"
            ) from exc
        return cls(number / 100 if relative else number, relative)

    def allowed(self, baseline: float) -> float:
        return self.value * abs(baseline) if self.relative else self.value

    def __str__(self) -> str:
        return f"{self.value * 100:g}%" if self.relative else f"{self.value:g}"


DEFAULT_TOLERANCES: Mapping[str, Tolerance] = {
    "accuracy": Tolerance(0.01),
    "mae": Tolerance(0.05, relative=True),
    "rmse": Tolerance(0.05, relative=True),
}


# -- smoke --------------------------------------------------------------------------------------
def evaluate_smoke(
    outputs_per_request: Sequence[Any],
    latencies_ms: Sequence[float],
    budget_ms: float,
    expected_output_names: Sequence[str],
    *,
    input_rows: Sequence[int],
    errors: Sequence[str | None] | None = None,
    sources: Sequence[str] | None = None,
    candidate: str = "",
    info: Mapping[str, Any] | None = None,
) -> GateReport:
    """Judge a smoke run: one entry per call in every sequence.

    A call passes when it raised nothing (``errors[i]`` None), returned something, every output
    holds only finite numbers (no None, NaN or inf), the expected outputs are present, every
    output has one row per input row (``input_rows[i]``) and it answered within ``budget_ms``.
    """
    n = len(outputs_per_request)
    errs = list(errors) if errors is not None else [None] * n
    names = list(sources) if sources is not None else [f"call {i + 1}" for i in range(n)]
    for what, seq in (("latencies_ms", latencies_ms), ("input_rows", input_rows)):
        if len(seq) != n:
            raise InvalidInputError(f"{what} has {len(seq)} entries for {n} calls; give one each")
    if len(errs) != n or len(names) != n:
        raise InvalidInputError(f"errors and sources need one entry for each of the {n} calls")
    budget = check_ms(budget_ms, "the latency budget (budget_ms)")
    latencies = [_latency(v) for v in latencies_ms]
    expected = [str(x) for x in expected_output_names]

    answered: list[int] = []
    failures: list[str] = []
    for i, (out, err) in enumerate(zip(outputs_per_request, errs, strict=True)):
        if err is None and out is None:
            err = "returned nothing"
        if err is None:
            answered.append(i)
        else:
            failures.append(f"{names[i]}: {err}")
    checks = [_answered_check(n, answered, failures)]

    invalid: list[str] = []
    missing: list[str] = []
    wrong_rows: list[str] = []
    for i in answered:
        try:
            arrays = _named_outputs(outputs_per_request[i], expected)
        except (TypeError, ValueError) as exc:
            invalid.append(f"{names[i]}: outputs cannot be read as arrays ({exc})")
            continue
        bad = [f"{k} {p}" for k, a in arrays.items() if (p := _bad_values(a))]
        if bad:
            invalid.append(f"{names[i]}: " + ", ".join(bad))
        absent = [e for e in expected if e not in arrays]
        if absent:
            missing.append(f"{names[i]} lacks " + ", ".join(repr(a) for a in absent))
        rows = [f"{k} has {_rows(a)}" for k, a in arrays.items() if _rows(a) != input_rows[i]]
        if rows:
            wrong_rows.append(
                f"{names[i]}: " + ", ".join(rows) + f" rows for {input_rows[i]} input rows"
            )
    nothing = "no answers to check" if not answered else ""
    checks.append(
        _count_check(
            "valid_outputs", invalid, nothing, "no None, NaN or inf in any output", bool(answered)
        )
    )
    if expected:
        checks.append(
            _count_check(
                "output_names",
                missing,
                nothing,
                "every call returned " + ", ".join(expected),
                bool(answered),
            )
        )
    else:
        checks.append(
            Check("output_names", None, None, True, "the version records no outputs to expect")
        )
    checks.append(
        _count_check(
            "row_counts", wrong_rows, nothing, "one output row per input row", bool(answered)
        )
    )
    checks.append(_latency_check([latencies[i] for i in answered], budget, len(answered)))
    return GateReport("smoke", candidate, None, tuple(checks), dict(info or {}))


def _answered_check(n: int, answered: list[int], failures: list[str]) -> Check:
    if n == 0:
        detail = "no calls were made: give the version an input example or golden requests"
    elif failures:
        detail = f"{len(failures)} of {n} calls failed; first: {failures[0]}"
    else:
        detail = f"all {n} calls answered"
    return Check("answered", len(answered), n, n > 0 and not failures, shorten(detail), "==")


def _count_check(name: str, problems: list[str], nothing: str, ok: str, ran: bool) -> Check:
    if not ran:
        return Check(name, None, 0, False, nothing, "==")
    detail = f"{len(problems)} calls; first: {problems[0]}" if problems else ok
    return Check(name, len(problems), 0, not problems, shorten(detail), "==")


def _latency_check(latencies: list[float], budget: float, answered: int) -> Check:
    if not latencies:
        return Check("latency_max_ms", None, budget, False, "no answers to time", "<=", "ms")
    worst = max(latencies)
    over = sum(1 for v in latencies if v > budget)
    detail = (
        f"{over} of {answered} calls over budget; " if over else f"all {answered} within budget; "
    ) + f"p50 {fmt(percentile(latencies, 0.5))} ms, p95 {fmt(percentile(latencies, 0.95))} ms"
    return Check("latency_max_ms", worst, budget, over == 0, detail, "<=", "ms")


def _named_outputs(value: Any, expected: Sequence[str]) -> dict[str, np.ndarray]:
    if isinstance(value, Mapping):
        return {str(k): _array(v) for k, v in value.items()}
    if hasattr(value, "columns") and hasattr(value, "iloc"):
        return {str(c): np.asarray(value[c].to_numpy()) for c in value.columns}
    name = expected[0] if len(expected) == 1 else "predictions"
    return {name: _array(value)}


def _array(value: Any) -> np.ndarray:
    if value is None:
        return np.asarray(None, dtype=object)
    return np.asarray(value)


def _rows(array: np.ndarray) -> int:
    return int(array.shape[0]) if array.ndim else 0


def _bad_values(array: np.ndarray) -> str | None:
    if array.ndim == 0 and array.dtype == object and array.item() is None:
        return "is None"
    if array.dtype.kind in "fc":
        bad = int(np.count_nonzero(~np.isfinite(array)))
        return f"has {bad} NaN/inf values" if bad else None
    if array.dtype.kind == "O":
        bad = sum(1 for v in array.ravel() if _missing(v))
        return f"has {bad} None/NaN/inf values" if bad else None
    return None


def _missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral):
        return not math.isfinite(float(value))
    return False


# -- regression ---------------------------------------------------------------------------------
def evaluate_regression(
    candidate_preds: Sequence[Any] | None,
    baseline_preds: Sequence[Any],
    labels: Sequence[Any] | None,
    candidate_latencies: Sequence[float],
    baseline_latencies: Sequence[float],
    tolerances: Mapping[str, Tolerance | float] | None = None,
    min_agreement: float | None = None,
    p95_budget_ms: float | None = None,
    *,
    task: Task = "auto",
    rtol: float = 0.05,
    atol: float = 1e-8,
    schema: CompatReport | None = None,
    allow_breaking_schema: bool = False,
    candidate_error: str | None = None,
    candidate: str = "",
    baseline: str = "",
    info: Mapping[str, Any] | None = None,
) -> GateReport:
    """Judge candidate against baseline on the same rows (see the module docstring).

    ``candidate_error`` says the candidate could not predict at all (the gate then fails on
    ``candidate_answers``); ``schema`` adds the schema compatibility check.
    """
    facts: dict[str, Any] = dict(info or {})
    checks: list[Check] = []
    if schema is not None:
        checks.append(schema_check(schema, allow_breaking_schema))
        facts["schema"] = schema.to_dict()
    n = len(baseline_preds)
    if candidate_error is not None or candidate_preds is None:
        detail = candidate_error or "the candidate gave no predictions"
        checks.append(Check("candidate_answers", None, None, False, shorten(detail)))
        return GateReport("regression", candidate, baseline, tuple(checks), facts)
    if len(candidate_preds) != n or (labels is not None and len(labels) != n):
        raise InvalidInputError(
            f"candidate ({len(candidate_preds)}), baseline ({n}) and labels "
            f"({'-' if labels is None else len(labels)}) must have one entry per row"
        )
    if n == 0:
        checks.append(Check("rows", 0, 1, False, "there are no rows to compare", ">="))
        return GateReport("regression", candidate, baseline, tuple(checks), facts)
    if min_agreement is not None:
        check_fraction(min_agreement, "min_agreement")
    kind = _task(task, candidate_preds, baseline_preds, labels)
    tols = _tolerances(tolerances, kind)
    facts.update({"task": kind, "rows": n})

    cand_missing = sum(1 for v in candidate_preds if _missing(v))
    base_missing = sum(1 for v in baseline_preds if _missing(v))
    checks.append(
        Check(
            "missing_predictions",
            cand_missing,
            base_missing,
            cand_missing <= base_missing,
            f"candidate left {cand_missing} of {n} rows unanswered, baseline {base_missing}",
            "<=",
        )
    )
    if labels is not None:
        checks.extend(_metric_checks(kind, candidate_preds, baseline_preds, labels, tols, facts))
    else:
        facts["metrics"] = "skipped: no labels"
    checks.append(
        _agreement_check(kind, candidate_preds, baseline_preds, min_agreement, labels, rtol, atol)
    )
    checks.append(_p95_check(candidate_latencies, baseline_latencies, p95_budget_ms, facts))
    return GateReport("regression", candidate, baseline, tuple(checks), facts)


def _task(
    task: Task, cand: Sequence[Any], base: Sequence[Any], labels: Sequence[Any] | None
) -> Literal["classification", "regression"]:
    if task in ("classification", "regression"):
        return task
    if task != "auto":
        raise InvalidInputError(f"task must be classification, regression or auto, not {task!r}")
    pairs = list(zip(base, labels, strict=True)) if labels is not None else []
    pairs += list(zip(cand, base, strict=True))
    return accuracy_stats(pairs, "auto").task


def _tolerances(given: Mapping[str, Tolerance | float] | None, kind: str) -> dict[str, Tolerance]:
    out = {m: t for m, t in DEFAULT_TOLERANCES.items() if METRICS[m][0] == kind}
    usable = ", ".join(out)
    for metric, value in (given or {}).items():
        if metric not in METRICS:
            raise InvalidInputError(
                f"no metric {metric!r} to hold to a tolerance; use one of {', '.join(METRICS)}"
            )
        if METRICS[metric][0] != kind:
            raise InvalidInputError(
                f"a tolerance for {metric} does not apply to a {kind} model; use {usable}"
            )
        out[metric] = value if isinstance(value, Tolerance) else Tolerance(float(value))
    return out


def _metric_checks(
    kind: str,
    cand: Sequence[Any],
    base: Sequence[Any],
    labels: Sequence[Any],
    tols: Mapping[str, Tolerance],
    facts: dict[str, Any],
) -> list[Check]:
    c_stats = accuracy_stats(zip(cand, labels, strict=True), kind)  # type: ignore[arg-type]
    b_stats = accuracy_stats(zip(base, labels, strict=True), kind)  # type: ignore[arg-type]
    if kind == "classification":
        labelled = sum(1 for y in labels if labels_equal(y, y))  # a missing label equals nothing
        figures: dict[str, tuple[float | None, float | None]] = {
            "accuracy": (
                (c_stats.correct or 0) / labelled if labelled else None,
                (b_stats.correct or 0) / labelled if labelled else None,
            )
        }
    else:
        labelled = b_stats.count
        figures = {"mae": (c_stats.mae, b_stats.mae), "rmse": (c_stats.rmse, b_stats.rmse)}
    facts["labelled_rows"] = labelled
    facts["candidate_metrics"] = {m: finite(c) for m, (c, _) in figures.items()}
    facts["baseline_metrics"] = {m: finite(b) for m, (_, b) in figures.items()}
    checks = []
    for metric, (c, b) in figures.items():
        tol = tols[metric]
        name = f"{metric}_delta"
        if c is None or b is None:
            detail = "no labelled rows to score" if not labelled else "the candidate scored no row"
            checks.append(Check(name, None, None, False, detail))
            continue
        delta = c - b
        allowed = tol.allowed(b)
        detail = f"candidate {fmt(c)} vs baseline {fmt(b)} on {labelled} rows (tolerance {tol})"
        if METRICS[metric][1] == "higher":
            checks.append(Check(name, delta, -allowed, delta >= -allowed - _EPS, detail, ">="))
        else:
            checks.append(Check(name, delta, allowed, delta <= allowed + _EPS, detail, "<="))
    return checks


def _agreement_check(
    kind: str,
    cand: Sequence[Any],
    base: Sequence[Any],
    min_agreement: float | None,
    labels: Sequence[Any] | None,
    rtol: float,
    atol: float,
) -> Check:
    n = len(base)
    if kind == "classification":
        agree = sum(1 for c, b in zip(cand, base, strict=True) if labels_equal(c, b))
        how = "same label"
    else:
        c_arr, b_arr = _floats(cand), _floats(base)
        agree = int(np.count_nonzero(np.isclose(c_arr, b_arr, rtol=rtol, atol=atol)))
        how = f"within rtol {rtol:g}, atol {atol:g}"
    share = agree / n
    threshold = min_agreement
    if threshold is None and labels is None:
        threshold = DEFAULT_MIN_AGREEMENT
    passed = threshold is None or share >= threshold - _EPS
    return Check("agreement", share, threshold, passed, f"{agree} of {n} rows agree ({how})", ">=")


def _floats(values: Sequence[Any]) -> np.ndarray:
    out = np.empty(len(values), dtype=np.float64)
    for i, v in enumerate(values):
        try:
            out[i] = float(v)
        except (TypeError, ValueError):
            out[i] = math.nan  # not a number: agrees with nothing
    return out


def _p95_check(
    cand: Sequence[float], base: Sequence[float], budget: float | None, facts: dict[str, Any]
) -> Check:
    c95 = percentile([_latency(v) for v in cand], 0.95) if cand else None
    b95 = percentile([_latency(v) for v in base], 0.95) if base else None
    facts["candidate_p95_ms"] = c95
    facts["baseline_p95_ms"] = b95
    facts["latency_samples"] = len(cand)
    limit = None if budget is None else check_ms(budget, "the p95 budget (p95_budget_ms)")
    detail = f"baseline p95 {fmt(b95)} ms"
    if c95 is not None and b95:
        detail += f", candidate/baseline {c95 / b95:.2f}x"
    if c95 is None:
        return Check("p95_ms", None, limit, limit is None, "no latencies measured", "<=", "ms")
    return Check("p95_ms", c95, limit, limit is None or c95 <= limit, detail, "<=", "ms")


# -- helpers ------------------------------------------------------------------------------------
def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-quantile, interpolated like ``numpy.quantile`` (and the latency sketches)."""
    if not values:
        raise InvalidInputError("no values to take a percentile of")
    return float(np.quantile(np.asarray(values, dtype=np.float64), q))


def check_ms(value: float, what: str) -> float:
    """``value`` if it is a finite number of milliseconds above 0, else ``InvalidInputError``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInputError(f"{what} must be a number of milliseconds, not {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise InvalidInputError(f"{what} must be a positive number of milliseconds, not {value}")
    return float(value)


def check_fraction(value: float, what: str) -> float:
    """``value`` if it is a number within [0, 1], else ``InvalidInputError``."""
    if isinstance(value, bool) or not (
        isinstance(value, int | float) and math.isfinite(value) and 0 <= value <= 1
    ):
        raise InvalidInputError(f"{what} must be a fraction between 0 and 1, not {value!r}")
    return float(value)


def _latency(value: float) -> float:
    number = float(value)
    if not (math.isfinite(number) and number >= 0):
        raise InvalidInputError(f"a latency must be a finite number of ms >= 0, not {value!r}")
    return number
