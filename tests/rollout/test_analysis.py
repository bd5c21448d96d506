from __future__ import annotations

import json

import pytest

from modelport.core.deployment import AnalysisThresholds
from modelport.core.errors import InvalidInputError
from modelport.rollout.analysis import (
    AnalysisCheck,
    ShadowWindow,
    Verdict,
    VersionWindow,
    analyse,
)

ALL = AnalysisThresholds(
    min_requests=100,
    max_error_rate=0.02,
    max_error_rate_increase=0.01,
    max_p95_ms=200,
    max_p95_ratio=1.5,
    min_shadow_agreement=0.9,
    min_accuracy=0.8,
    min_labels=50,
)
BASE = VersionWindow(requests=1000, errors=10, p95_ms=100.0, labeled=500, accuracy=0.85)
GOOD = VersionWindow(requests=200, errors=2, p95_ms=110.0, labeled=60, accuracy=0.86)
AGREE = ShadowWindow(compared=200, agreed=190)


def check(verdict: Verdict, name: str) -> AnalysisCheck:
    found = [c for c in verdict.checks if c.name == name]
    assert len(found) == 1, verdict.checks
    return found[0]


def test_everything_within_limits_passes_with_every_check_listed() -> None:
    verdict = analyse(ALL, BASE, GOOD, AGREE)
    assert verdict.outcome == "pass"
    assert [c.name for c in verdict.checks] == [
        "requests",
        "error_rate",
        "error_rate_increase",
        "p95_ms",
        "p95_ratio",
        "shadow_agreement",
        "accuracy",
    ]
    assert all(c.outcome == "pass" for c in verdict.checks)
    assert check(verdict, "requests").figure == 200
    assert check(verdict, "requests").threshold == 100
    assert check(verdict, "error_rate").figure == pytest.approx(0.01)
    assert check(verdict, "error_rate_increase").figure == pytest.approx(0.0)
    assert check(verdict, "error_rate_increase").baseline == pytest.approx(0.01)
    assert check(verdict, "p95_ratio").figure == pytest.approx(1.1)
    assert check(verdict, "shadow_agreement").figure == pytest.approx(0.95)
    assert verdict.summary == "all checks passed"


@pytest.mark.parametrize(
    ("candidate", "shadow", "failing", "figure", "threshold"),
    [
        (VersionWindow(200, 6, 110.0, 60, 0.86), AGREE, "error_rate", 0.03, 0.02),
        (VersionWindow(200, 6, 110.0, 60, 0.86), AGREE, "error_rate_increase", 0.02, 0.01),
        (VersionWindow(200, 2, 250.0, 60, 0.86), AGREE, "p95_ms", 250.0, 200),
        (VersionWindow(200, 2, 160.0, 60, 0.86), AGREE, "p95_ratio", 1.6, 1.5),
        (GOOD, ShadowWindow(200, 150), "shadow_agreement", 0.75, 0.9),
        (VersionWindow(200, 2, 110.0, 60, 0.7), AGREE, "accuracy", 0.7, 0.8),
    ],
)
def test_each_breach_fails_with_its_figure_and_threshold(
    candidate: VersionWindow,
    shadow: ShadowWindow,
    failing: str,
    figure: float,
    threshold: float,
) -> None:
    verdict = analyse(ALL, BASE, candidate, shadow)
    assert verdict.outcome == "fail"
    failed = check(verdict, failing)
    assert failed.outcome == "fail"
    assert failed.figure == pytest.approx(figure)
    assert failed.threshold == threshold
    assert failed.note in verdict.summary


def test_too_few_requests_waits_even_when_every_request_failed() -> None:
    verdict = analyse(ALL, BASE, VersionWindow(requests=99, errors=99, p95_ms=9000.0))
    assert verdict.outcome == "wait"
    assert "fail" not in {c.outcome for c in verdict.checks}
    assert check(verdict, "requests").outcome == "wait"
    assert "waiting for 100 candidate requests (have 99)" in verdict.summary


def test_no_requests_at_all_waits() -> None:
    verdict = analyse(ALL, VersionWindow(), VersionWindow())
    assert verdict.outcome == "wait"


def test_missing_p95_waits() -> None:
    verdict = analyse(ALL, BASE, VersionWindow(200, 2, None, 60, 0.86), AGREE)
    assert verdict.outcome == "wait"
    assert check(verdict, "p95_ms").outcome == "wait"
    assert check(verdict, "p95_ratio").outcome == "wait"


def test_too_few_labels_waits() -> None:
    verdict = analyse(ALL, BASE, VersionWindow(200, 2, 110.0, 49, 0.1), AGREE)
    assert verdict.outcome == "wait"
    assert check(verdict, "accuracy").outcome == "wait"
    assert check(verdict, "accuracy").figure is None


def test_too_few_shadow_comparisons_waits() -> None:
    verdict = analyse(ALL, BASE, GOOD, ShadowWindow(compared=50, agreed=0))
    assert verdict.outcome == "wait"
    assert check(verdict, "shadow_agreement").outcome == "wait"


def test_relative_checks_wait_for_a_baseline_with_too_little_data() -> None:
    thin = VersionWindow(requests=10, errors=0, p95_ms=1.0)
    verdict = analyse(ALL, thin, VersionWindow(200, 3, 199.0, 60, 0.86), AGREE)
    assert verdict.outcome == "wait"
    assert check(verdict, "error_rate_increase").outcome == "wait"
    assert check(verdict, "p95_ratio").outcome == "wait"
    assert check(verdict, "error_rate").outcome == "pass"


def test_relative_checks_wait_for_a_baseline_p95() -> None:
    base = VersionWindow(requests=1000, errors=10, p95_ms=None)
    verdict = analyse(ALL, base, GOOD, AGREE)
    assert check(verdict, "p95_ratio").outcome == "wait"
    assert check(verdict, "error_rate_increase").outcome == "pass"


def test_without_a_baseline_relative_checks_are_skipped() -> None:
    verdict = analyse(ALL, None, GOOD, AGREE)
    assert verdict.outcome == "pass"
    assert check(verdict, "error_rate_increase").outcome == "skip"
    assert check(verdict, "p95_ratio").outcome == "skip"


def test_without_a_shadow_window_agreement_is_skipped() -> None:
    verdict = analyse(ALL, BASE, GOOD)
    assert check(verdict, "shadow_agreement").outcome == "skip"
    assert verdict.outcome == "pass"


def test_a_breach_is_not_hidden_by_a_check_still_waiting() -> None:
    candidate = VersionWindow(requests=200, errors=50, p95_ms=110.0, labeled=0)
    verdict = analyse(ALL, BASE, candidate, AGREE)
    assert check(verdict, "accuracy").outcome == "wait"
    assert verdict.outcome == "fail"


def test_limits_are_inclusive() -> None:
    at_limit = VersionWindow(requests=100, errors=2, p95_ms=200.0, labeled=50, accuracy=0.8)
    base = VersionWindow(requests=1000, errors=10, p95_ms=200.0)
    verdict = analyse(ALL, base, at_limit, ShadowWindow(100, 90))
    assert verdict.outcome == "pass", verdict.checks


def test_disabled_thresholds_are_not_checked() -> None:
    only_requests = AnalysisThresholds(
        max_error_rate=None,
        max_error_rate_increase=None,
        max_p95_ratio=None,
        min_shadow_agreement=None,
    )
    verdict = analyse(only_requests, BASE, VersionWindow(requests=100, errors=100))
    assert [c.name for c in verdict.checks] == ["requests"]
    assert verdict.outcome == "pass"


def test_min_requests_override() -> None:
    verdict = analyse(ALL, BASE, GOOD, AGREE, min_requests=500)
    assert verdict.outcome == "wait"
    assert check(verdict, "requests").threshold == 500


def test_sub_millisecond_baseline_p95_is_floored() -> None:
    base = VersionWindow(requests=1000, errors=0, p95_ms=0.2)
    candidate = VersionWindow(requests=200, errors=0, p95_ms=1.2)
    verdict = analyse(ALL, base, candidate, AGREE)
    assert check(verdict, "p95_ratio").figure == pytest.approx(1.2)
    assert check(verdict, "p95_ratio").outcome == "pass"


def test_verdict_serialises_for_audit_events() -> None:
    data = analyse(ALL, BASE, VersionWindow(200, 6, 110.0, 60, 0.86), AGREE).to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["outcome"] == "fail"
    rate = next(c for c in data["checks"] if c["name"] == "error_rate")
    assert rate == {
        "name": "error_rate",
        "outcome": "fail",
        "figure": pytest.approx(0.03),
        "threshold": 0.02,
        "baseline": None,
        "note": "error rate 0.03 is above 0.02",
    }


@pytest.mark.parametrize(
    "make",
    [
        lambda: VersionWindow(requests=1, errors=2),
        lambda: VersionWindow(requests=-1),
        lambda: VersionWindow(labeled=-1),
        lambda: VersionWindow(p95_ms=-1.0),
        lambda: VersionWindow(p95_ms=float("nan")),
        lambda: VersionWindow(accuracy=1.5),
        lambda: ShadowWindow(compared=1, agreed=2),
    ],
)
def test_impossible_windows_are_refused(make: object) -> None:
    with pytest.raises(InvalidInputError):
        make()  # type: ignore[operator]
