"""Running the gates against registered versions: smoke, regression, schema compatibility.

Each runner loads versions through ``Registry.load`` (digest-verified, the variant serving would
use), feeds them inputs the way the serving data plane does (``serving.adapt``), measures, and
hands the figures to the pure judges in ``modelport.rollout.gates``. The report is stored with
the candidate version (``gate_reports``, audited as ``version.gate``) unless ``store=False``.

What fails a gate and what is an error:

- the candidate cannot be loaded by its runtime (``ModelLoadError``) or fails while predicting
  (``PredictionError``, or input it cannot take): a failed report, stored like any other;
- anything about the caller, the registry or this machine (a bad ref or option, missing data,
  a digest mismatch, an untrusted artifact, a missing extra, an environment mismatch under a
  strict policy, the baseline failing): raised, with its own error code.

Golden requests are never unpickled: they are CSV/Parquet rows, registered datasets, in-memory
frames, or JSON in the ``core.examples`` encoding (``read_golden``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from modelport.api.gate_inputs import (
    MAX_GOLDEN_REQUESTS,
    is_frame,
    read_golden,
    regression_data,
    smoke_requests,
)
from modelport.api.registry import Registry
from modelport.core.clock import Clock, SystemClock
from modelport.core.errors import InvalidInputError, ModelLoadError, PredictionError
from modelport.core.model import GateReportRecord, ModelVersion
from modelport.core.refs import ModelRef
from modelport.monitoring.accuracy import Task
from modelport.rollout.gate_report import GateReport, evaluate_schema
from modelport.rollout.gates import (
    METRICS,
    Tolerance,
    check_fraction,
    check_ms,
    evaluate_regression,
    evaluate_smoke,
)
from modelport.rollout.schema_compat import CompatReport, check_compatibility
from modelport.runtime.base import Runtime
from modelport.serving.adapt import frame_for_signature, rows_of

__all__ = [
    "DEFAULT_BUDGET_MS",
    "DEFAULT_REPEATS",
    "LATENCY_SAMPLES",
    "MAX_GOLDEN_REQUESTS",
    "check_schema",
    "gate_reports",
    "read_golden",
    "run_regression",
    "run_smoke",
]

DEFAULT_BUDGET_MS = 1000.0
DEFAULT_REPEATS = 3
LATENCY_SAMPLES = 50
BATCH_ROWS = 10_000


# -- smoke --------------------------------------------------------------------------------------
def run_smoke(
    registry: Registry,
    ref: ModelRef | str,
    golden: Any = None,
    budget_ms: float = DEFAULT_BUDGET_MS,
    *,
    repeats: int = DEFAULT_REPEATS,
    golden_label: str | None = None,
    variant: str = "auto",
    store: bool = True,
    clock: Clock | None = None,
) -> GateReport:
    """Load ``ref`` and have it answer its input example and golden requests ``repeats`` times.

    ``golden``: a DataFrame (one request per row), a list of requests (frames, arrays or dicts
    of arrays), a dataset ref ``NAME:VERSION``, or None for the golden datasets the version
    links. At most ``MAX_GOLDEN_REQUESTS`` golden requests are used (the report says so).
    One untimed warm-up call precedes the timed ones; every call must answer within
    ``budget_ms``. ``golden_label`` names the golden requests in the report (e.g. their file).
    """
    _count(repeats, "repeats")
    check_ms(budget_ms, "the latency budget (budget_ms)")
    clock = clock or SystemClock()
    version = registry.get(ref)
    requests, facts = smoke_requests(registry, version, golden)
    if golden_label is not None and "golden" in facts:
        facts["golden"] = [golden_label]
    facts.update({"repeats": repeats, "budget_ms": float(budget_ms), "variant": variant})
    if version.ref != str(ref):
        facts["requested"] = str(ref)
    if not requests:
        raise InvalidInputError(
            f"{version.ref} has no stored input example and no golden requests were given; "
            "give golden requests (--golden FILE) or register the version with an input example"
        )
    expected = [f.name for f in version.signature.outputs] if version.signature else []
    outputs: list[Any] = []
    latencies: list[float] = []
    rows: list[int] = []
    errors: list[str | None] = []
    sources: list[str] = []
    try:
        runtime = registry.load(version.ref, variant=variant)
    except ModelLoadError as exc:  # the candidate's artifact: a finding, not an error
        failed = evaluate_smoke(
            [None],
            [0.0],
            budget_ms,
            expected,
            input_rows=[0],
            errors=[f"could not be loaded: {exc}"],
            sources=["load"],
            candidate=version.ref,
            info=facts,
        )
        return _stored(registry, version, failed, store)
    try:
        first = requests[0]
        facts["warmup_ms"] = _call(runtime, version, first[1], clock)[2]
        for _ in range(repeats):
            for source, inputs in requests:
                out, err, took, n = _call(runtime, version, inputs, clock)
                outputs.append(out)
                errors.append(err)
                latencies.append(took)
                rows.append(n)
                sources.append(source)
    finally:
        runtime.unload()
    report = evaluate_smoke(
        outputs,
        latencies,
        budget_ms,
        expected,
        input_rows=rows,
        errors=errors,
        sources=sources,
        candidate=version.ref,
        info=facts,
    )
    return _stored(registry, version, report, store)


def _call(
    runtime: Runtime, version: ModelVersion, inputs: Any, clock: Clock
) -> tuple[Any, str | None, float, int]:
    """One prediction: (outputs, error, latency ms, input rows). Input adaptation is untimed."""
    try:
        adapted = _adapt(inputs, version)
        n = rows_of(adapted)
    except InvalidInputError as exc:  # the request does not fit the version's signature
        return None, str(exc), 0.0, 0
    start = clock.monotonic()
    try:
        out = runtime.predict(adapted)
    except (PredictionError, InvalidInputError) as exc:  # the model: a finding
        return None, str(exc), (clock.monotonic() - start) * 1000.0, n
    return out, None, (clock.monotonic() - start) * 1000.0, n


# -- regression ---------------------------------------------------------------------------------
def run_regression(
    registry: Registry,
    candidate_ref: ModelRef | str,
    baseline_ref: ModelRef | str,
    data: Any = None,
    label_column: str | None = None,
    *,
    tolerances: Mapping[str, Tolerance | float] | None = None,
    min_agreement: float | None = None,
    p95_budget_ms: float | None = None,
    allow_breaking_schema: bool = False,
    task: Task = "auto",
    latency_samples: int = LATENCY_SAMPLES,
    data_label: str | None = None,
    variant: str = "auto",
    store: bool = True,
    clock: Clock | None = None,
) -> GateReport:
    """Compare ``candidate_ref`` with ``baseline_ref`` on the same rows, schema included.

    ``data``: a DataFrame, a dataset ref ``NAME:VERSION``, or None for the first golden (else
    validation) dataset the baseline, then the candidate, links. With ``label_column`` the
    metric deltas are computed too. Latency: ``latency_samples`` single-row calls per
    version, interleaved, after one warm-up call each. ``data_label`` names the data in the
    report (e.g. the file it was read from).
    """
    _count(latency_samples, "latency_samples")
    if p95_budget_ms is not None:
        check_ms(p95_budget_ms, "the p95 budget (p95_budget_ms)")
    if min_agreement is not None:
        check_fraction(min_agreement, "min_agreement")
    unknown = sorted(set(tolerances or {}) - set(METRICS))
    if unknown:
        raise InvalidInputError(
            f"no metric {unknown[0]!r} to hold to a tolerance; use one of {', '.join(METRICS)}"
        )
    clock = clock or SystemClock()
    candidate = registry.get(candidate_ref)
    baseline = registry.get(baseline_ref)
    frame, source = regression_data(registry, data, baseline, candidate)
    source = data_label or source
    labels: list[Any] | None = None
    if label_column is not None:
        if label_column not in frame.columns:
            shown = ", ".join(str(c) for c in list(frame.columns)[:10])
            raise InvalidInputError(
                f"label column {label_column!r} is not in the data ({source}); "
                f"its columns are {shown}"
            )
        labels = frame[label_column].tolist()
        frame = frame.drop(columns=[label_column])
    if len(frame) == 0:
        raise InvalidInputError(f"the data ({source}) has no rows; give rows to compare on")
    judge = _Judge(
        candidate=candidate,
        baseline=baseline,
        labels=labels,
        tolerances=tolerances,
        min_agreement=min_agreement,
        p95_budget_ms=p95_budget_ms,
        allow_breaking_schema=allow_breaking_schema,
        task=task,
        schema=check_compatibility(baseline.signature, candidate.signature),
        facts={"data": source, "label_column": label_column, "variant": variant},
    )
    samples = min(latency_samples, len(frame))
    base_rt = registry.load(baseline.ref, variant=variant)
    try:
        base_preds = _baseline_predictions(base_rt, baseline, frame, source)
        try:
            cand_rt = registry.load(candidate.ref, variant=variant)
        except ModelLoadError as exc:  # the candidate's artifact: a finding, not an error
            return _stored(registry, candidate, judge.failed(f"could not be loaded: {exc}"), store)
        try:
            try:
                cand_preds = _predict_all(cand_rt, candidate, frame)
            except (PredictionError, InvalidInputError) as exc:  # the candidate: a finding
                report = judge.failed(f"could not score the data ({source}): {exc}")
                return _stored(registry, candidate, report, store)
            cand_ms, base_ms = _latencies(
                (cand_rt, candidate), (base_rt, baseline), frame, samples, clock
            )
        finally:
            cand_rt.unload()
    finally:
        base_rt.unload()
    report = judge.judge(cand_preds, base_preds, cand_ms, base_ms)
    return _stored(registry, candidate, report, store)


@dataclass(frozen=True, slots=True)
class _Judge:
    """What a regression run is judged on, whether the candidate answered or not."""

    candidate: ModelVersion
    baseline: ModelVersion
    labels: list[Any] | None
    tolerances: Mapping[str, Tolerance | float] | None
    min_agreement: float | None
    p95_budget_ms: float | None
    allow_breaking_schema: bool
    task: Task
    schema: CompatReport
    facts: dict[str, Any]

    def judge(
        self,
        cand_preds: list[Any] | None,
        base_preds: list[Any],
        cand_ms: list[float],
        base_ms: list[float],
        error: str | None = None,
    ) -> GateReport:
        return evaluate_regression(
            cand_preds,
            base_preds,
            self.labels if cand_preds is not None else None,
            cand_ms,
            base_ms,
            self.tolerances,
            self.min_agreement,
            self.p95_budget_ms,
            task=self.task,
            schema=self.schema,
            allow_breaking_schema=self.allow_breaking_schema,
            candidate_error=error,
            candidate=self.candidate.ref,
            baseline=self.baseline.ref,
            info=self.facts,
        )

    def failed(self, reason: str) -> GateReport:
        return self.judge(None, [], [], [], reason)


def _baseline_predictions(
    runtime: Runtime, baseline: ModelVersion, frame: Any, source: str
) -> list[Any]:
    try:
        return _predict_all(runtime, baseline, frame)
    except InvalidInputError as exc:
        raise InvalidInputError(
            f"the data ({source}) does not fit baseline {baseline.ref}: {exc}; give data with "
            "every input of the baseline"
        ) from exc
    except PredictionError as exc:
        raise PredictionError(
            f"baseline {baseline.ref} could not score the data ({source}): {exc}"
        ) from exc


def _predict_all(runtime: Runtime, version: ModelVersion, frame: Any) -> list[Any]:
    preds: list[Any] = []
    for start in range(0, len(frame), BATCH_ROWS):
        chunk = frame.iloc[start : start + BATCH_ROWS]
        preds.extend(_predictions(runtime.predict(_adapt(chunk, version)), len(chunk), version))
    return preds


def _latencies(
    cand: tuple[Runtime, ModelVersion],
    base: tuple[Runtime, ModelVersion],
    frame: Any,
    samples: int,
    clock: Clock,
) -> tuple[list[float], list[float]]:
    """Single-row latencies, the two versions called alternately so load affects both alike."""
    runs: list[tuple[Runtime, list[Any], list[float]]] = [
        (runtime, [_adapt(frame.iloc[i : i + 1], version) for i in range(samples)], [])
        for runtime, version in (cand, base)
    ]
    for runtime, inputs, _ in runs:
        runtime.predict(inputs[0])  # warm-up, untimed
    for i in range(samples):
        for runtime, inputs, took in runs:
            start = clock.monotonic()
            runtime.predict(inputs[i])
            took.append((clock.monotonic() - start) * 1000.0)
    return runs[0][2], runs[1][2]


def _predictions(outputs: Any, rows: int, version: ModelVersion) -> list[Any]:
    """One prediction per row: the ``predictions`` output, or the only output there is."""
    value = outputs
    if isinstance(outputs, Mapping) or is_frame(outputs):
        names = [str(k) for k in (outputs.columns if is_frame(outputs) else outputs.keys())]
        if "predictions" in names:
            value = outputs["predictions"]
        elif len(names) == 1:
            value = outputs[names[0]]
        else:
            raise PredictionError(
                f"{version.ref} returns outputs {', '.join(names[:5])} and none is named "
                "'predictions'; the regression gate compares one prediction per row"
            )
    array = np.asarray(value.to_numpy() if hasattr(value, "to_numpy") else value)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1 or array.shape[0] != rows:
        raise PredictionError(
            f"{version.ref} returned predictions of shape {list(array.shape)} for {rows} rows; "
            "the regression gate compares one prediction per row"
        )
    return list(array.tolist())


# -- schema and stored reports ------------------------------------------------------------------
def check_schema(
    registry: Registry,
    candidate_ref: ModelRef | str,
    current_ref: ModelRef | str,
    *,
    allow_breaking: bool = False,
    store: bool = True,
) -> GateReport:
    """The schema compatibility gate alone: can ``candidate_ref`` take what ``current_ref``
    takes? (No model is loaded.)"""
    candidate = registry.get(candidate_ref)
    current = registry.get(current_ref)
    compat = check_compatibility(current.signature, candidate.signature)
    report = evaluate_schema(compat, candidate.ref, current.ref, allow_breaking)
    return _stored(registry, candidate, report, store)


def gate_reports(
    registry: Registry, ref: ModelRef | str, gate: str | None = None
) -> list[GateReportRecord]:
    """Stored reports, oldest first: of every version for a bare ``NAME``, else of the version
    the ref names."""
    parsed = ModelRef.parse(ref) if isinstance(ref, str) else ref
    if parsed.is_latest:
        return registry.service.gate_reports(parsed.name, None, gate)
    version = registry.get(parsed)
    return registry.service.gate_reports(version.name, version.number, gate)


# -- shared -------------------------------------------------------------------------------------
def _stored(
    registry: Registry, version: ModelVersion, report: GateReport, store: bool
) -> GateReport:
    if store:
        registry.service.add_gate_report(version, report.gate, report.passed, report.to_dict())
    return report


def _adapt(inputs: Any, version: ModelVersion) -> Any:
    """A request as the serving data plane would hand it to the model."""
    if is_frame(inputs) and version.signature is not None:
        return frame_for_signature(inputs, version.signature, version.ref)
    return inputs


def _count(value: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 10_000:
        raise InvalidInputError(f"{what} must be a whole number from 1 to 10000, not {value!r}")
    return value
