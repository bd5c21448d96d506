"""Rollout analysis: window figures and thresholds in, a verdict (pass / fail / wait) out.

Pure and deterministic. The windows cover the current stage only (the controller measures from
the stage's start). Every configured threshold yields one ``AnalysisCheck`` with its figure, its
threshold and its outcome, so the verdict can be recorded as the evidence of a decision.

Rules:
- a check *fails* only on enough data: the candidate has ``min_requests`` requests (compared
  requests for shadow agreement, ``min_labels`` labels for accuracy) and, for a check relative to
  the baseline, the baseline has ``min_requests`` requests and the figure it is compared with;
- too little data is *wait*, never a failure; a relative check with ``baseline=None`` (a stage
  where the baseline takes no traffic, like the blue-green verify stage) is *skip*, and so is the
  shadow agreement check without a shadow window;
- the verdict fails if any check fails (a breach is not hidden by another check still waiting),
  else waits if any check waits, else passes.
- limits are inclusive: an error rate equal to ``max_error_rate`` passes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from modelport.core.deployment import AnalysisThresholds
from modelport.core.errors import InvalidInputError
from modelport.rollout.compare import ABDifference, ab_difference

__all__ = [
    "AnalysisCheck",
    "CheckOutcome",
    "ShadowWindow",
    "Verdict",
    "VersionWindow",
    "ab_figures",
    "analyse",
]

CheckOutcome = Literal["pass", "fail", "wait", "skip", "info"]
"""``info``: a figure reported for the record that decides nothing (the A/B differences)."""
_EPS = 1e-12
P95_FLOOR_MS = 1.0
"""Baseline p95 below this counts as this in ``p95_ratio``, so a sub-millisecond baseline does
not turn noise into a breach."""


@dataclass(frozen=True, slots=True)
class VersionWindow:
    """One version's figures over the stage: request and error counts, p95 latency (None when
    unknown), how many requests got a ground-truth label and the accuracy on those."""

    requests: int = 0
    errors: int = 0
    p95_ms: float | None = None
    labeled: int = 0
    accuracy: float | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.errors <= self.requests:
            raise InvalidInputError(
                f"a window needs 0 <= errors <= requests (got {self.errors} of {self.requests})"
            )
        if self.labeled < 0:
            raise InvalidInputError(f"labeled must be 0 or more (got {self.labeled})")
        if self.p95_ms is not None and not self.p95_ms >= 0:
            raise InvalidInputError(f"p95_ms must be 0 or more, or None (got {self.p95_ms})")
        if self.accuracy is not None and not 0 <= self.accuracy <= 1:
            raise InvalidInputError(f"accuracy is a fraction from 0 to 1 (got {self.accuracy})")

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None


@dataclass(frozen=True, slots=True)
class ShadowWindow:
    """Shadow comparison over the stage: requests answered by both versions, and how many of
    those answers agreed (label equality for classifiers, a tolerance for regressors)."""

    compared: int = 0
    agreed: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.agreed <= self.compared:
            raise InvalidInputError(
                f"a shadow window needs 0 <= agreed <= compared "
                f"(got {self.agreed} of {self.compared})"
            )

    @property
    def agreement(self) -> float | None:
        return self.agreed / self.compared if self.compared else None


@dataclass(frozen=True, slots=True)
class AnalysisCheck:
    """One threshold checked: ``figure`` against ``threshold`` (``baseline`` is the baseline's
    figure for a relative check); ``note`` says why in words."""

    name: str
    outcome: CheckOutcome
    figure: float | None
    threshold: float
    baseline: float | None = None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "outcome": self.outcome,
            "figure": self.figure,
            "threshold": self.threshold,
            "baseline": self.baseline,
            "note": self.note,
        }


@dataclass(frozen=True, slots=True)
class Verdict:
    outcome: Literal["pass", "fail", "wait"]
    checks: tuple[AnalysisCheck, ...]

    @property
    def summary(self) -> str:
        """The notes of the checks that decided the outcome, e.g. for an audit event."""
        if self.outcome == "pass":
            return "all checks passed"
        notes = dict.fromkeys(c.note for c in self.checks if c.outcome == self.outcome)
        return "; ".join(notes)

    def to_dict(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "checks": [c.to_dict() for c in self.checks]}


def analyse(
    thresholds: AnalysisThresholds,
    baseline: VersionWindow | None,
    candidate: VersionWindow,
    shadow: ShadowWindow | None = None,
    *,
    min_requests: int | None = None,
) -> Verdict:
    """The verdict for one stage. ``min_requests`` overrides ``thresholds.min_requests`` (a
    shadow stage's own minimum); ``baseline=None`` skips the relative checks."""
    t = thresholds
    need = t.min_requests if min_requests is None else min_requests
    enough = candidate.requests >= need
    waiting = f"waiting for {need} candidate requests (have {candidate.requests})"
    note = waiting if not enough else f"{candidate.requests} candidate requests (need {need})"
    checks = [_check("requests", "pass" if enough else "wait", candidate.requests, need, note)]
    rate, p95 = candidate.error_rate, candidate.p95_ms
    if t.max_error_rate is not None:
        checks.append(_limit("error_rate", rate if enough else None, t.max_error_rate, waiting))
    if t.max_error_rate_increase is not None:
        checks.append(
            _relative(
                "error_rate_increase",
                t.max_error_rate_increase,
                baseline,
                need,
                rate if enough else None,
                None if baseline is None else baseline.error_rate,
                lambda c, b: c - b,
            )
        )
    if t.max_p95_ms is not None:
        why = waiting if not enough else "waiting for a candidate p95"
        checks.append(_limit("p95_ms", p95 if enough else None, t.max_p95_ms, why))
    if t.max_p95_ratio is not None:
        checks.append(
            _relative(
                "p95_ratio",
                t.max_p95_ratio,
                baseline,
                need,
                p95 if enough else None,
                None if baseline is None else baseline.p95_ms,
                lambda c, b: c / max(b, P95_FLOOR_MS),
            )
        )
    if t.min_shadow_agreement is not None:
        checks.append(_agreement(t.min_shadow_agreement, shadow, need))
    if t.min_accuracy is not None:
        labeled = candidate.labeled >= t.min_labels
        why = f"waiting for {t.min_labels} labels (have {candidate.labeled})"
        acc = candidate.accuracy if labeled else None
        checks.append(_limit("accuracy", acc, t.min_accuracy, why, at_least=True))
    outcomes = {c.outcome for c in checks}
    verdict: Literal["pass", "fail", "wait"] = (
        "fail" if "fail" in outcomes else "wait" if "wait" in outcomes else "pass"
    )
    return Verdict(verdict, tuple(checks))


def _check(
    name: str,
    outcome: CheckOutcome,
    figure: float | None,
    threshold: float,
    note: str,
    baseline: float | None = None,
) -> AnalysisCheck:
    return AnalysisCheck(name, outcome, figure, threshold, baseline, note)


def _limit(
    name: str,
    figure: float | None,
    limit: float,
    waiting: str,
    *,
    at_least: bool = False,
    baseline: float | None = None,
) -> AnalysisCheck:
    """``figure`` held to at most (or ``at_least``) ``limit``; None means not enough data."""
    if figure is None:
        return _check(name, "wait", None, limit, waiting, baseline)
    label = name.replace("_", " ")
    if at_least:
        failed, words = figure < limit - _EPS, ("is below", "meets")
    else:
        failed, words = figure > limit + _EPS, ("is above", "is within")
    note = f"{label} {figure:.4g} {words[0] if failed else words[1]} {limit:g}"
    return _check(name, "fail" if failed else "pass", figure, limit, note, baseline)


def _relative(
    name: str,
    limit: float,
    baseline: VersionWindow | None,
    need: int,
    figure: float | None,
    base_figure: float | None,
    combine: Callable[[float, float], float],
) -> AnalysisCheck:
    """The candidate's figure against the baseline's, as ``combine(candidate, baseline)``."""
    if baseline is None:
        return _check(name, "skip", None, limit, f"{name} not checked: no baseline traffic")
    if baseline.requests < need or base_figure is None:
        why = f"waiting for {need} baseline requests (have {baseline.requests})"
        if baseline.requests >= need:
            why = f"waiting for a baseline figure for {name}"
        return _check(name, "wait", None, limit, why, base_figure)
    if figure is None:
        return _check(name, "wait", None, limit, f"waiting for candidate {name}", base_figure)
    return _limit(name, combine(figure, base_figure), limit, "", baseline=base_figure)


def _agreement(limit: float, shadow: ShadowWindow | None, need: int) -> AnalysisCheck:
    name = "shadow_agreement"
    if shadow is None:
        return _check(name, "skip", None, limit, "shadow agreement not checked: no shadow")
    enough = shadow.compared >= need
    why = f"waiting for {need} shadow comparisons (have {shadow.compared})"
    return _limit(name, shadow.agreement if enough else None, limit, why, at_least=True)


def ab_figures(
    baseline: VersionWindow, candidate: VersionWindow, confidence: float = 0.95
) -> tuple[AnalysisCheck, ...]:
    """The A/B report: candidate minus baseline error rate, and accuracy when both arms have
    labels, each with a Newcombe score interval (``rollout.compare.ab_difference``). They are
    ``info`` checks: recorded with the stage's decisions, deciding nothing themselves."""
    out = []
    errors = ab_difference(
        candidate.errors, candidate.requests, baseline.errors, baseline.requests, confidence
    )
    out.append(_difference("ab_error_rate_diff", "error rate", errors, baseline.error_rate))
    if candidate.accuracy is not None and baseline.accuracy is not None:
        right_c = round(candidate.accuracy * candidate.labeled)
        right_b = round(baseline.accuracy * baseline.labeled)
        accuracy = ab_difference(right_c, candidate.labeled, right_b, baseline.labeled, confidence)
        out.append(_difference("ab_accuracy_diff", "accuracy", accuracy, baseline.accuracy))
    return tuple(out)


def _difference(name: str, what: str, diff: ABDifference, base: float | None) -> AnalysisCheck:
    if diff.insufficient_data or diff.estimate is None:
        return _check(name, "info", None, 0.0, f"{what} difference: no data in an arm yet", base)
    level = f"{diff.confidence:.0%}"
    differ = "differs" if diff.excludes_zero else "no significant difference"
    note = (
        f"{what} {diff.rate_a:.4g} vs {diff.rate_b:.4g}: {diff.estimate:+.4g} "
        f"({level} CI {diff.low:+.4g} to {diff.high:+.4g}, {differ})"
    )
    return _check(name, "info", diff.estimate, 0.0, note, base)
