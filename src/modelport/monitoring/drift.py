"""Drift of production data against the reference profile captured at registration.

Pure functions; the reference is a ``core.profile.FeatureProfile``, the current data any array-like.

- PSI, numeric: bins at the reference deciles (outer bins open-ended, so ~10% of the reference each;
  tied deciles merge bins). Categorical: the reference categories, unseen values pooled with
  ``__other__``. Smoothing: reference shares are floored at 1e-4 (renormalised); current shares get
  a Jeffreys-style pseudo-count of half an observation per bin, spread in proportion to the
  reference, so an empty bin gives a finite PSI and a tiny sample is pulled towards "no drift".
- KS: the reference CDF is rebuilt from its 101 percentiles (piecewise linear, jumps at ties); the
  p-value is Kolmogorov's distribution (``scipy.stats.kstwo``) with the effective size
  ``n * m / (n + m)`` (``m`` = reference values): the current sample size when the reference is far
  larger (reference treated as the population), the two-sample size when it is not. Below ~1% of
  CDF resolution the rebuilt reference cannot tell shifts apart; the PSI gate covers that.
- Chi-squared (categorical): homogeneity of the current counts and the reference frequencies * m,
  which is the goodness-of-fit test on ``reference freq * n`` when the reference is large.
  Categories expected fewer than 5 times are pooled into ``__other__`` (with unseen values); an
  ``__other__`` still under 5 is merged into the smallest remaining category.

Verdict: "drift" needs PSI >= ``thresholds.psi`` AND the test's p-value < ``thresholds.p_value``.
PSI alone is biased upward for small samples (about ``bins / n`` under no drift: ~0.2 at n=40), so
the significance test keeps small samples from raising false alarms; PSI keeps large windows from
flagging shifts too small to matter. A rise of the missing share by ``thresholds.missing_rate``
(significant at ``p_value``) is drift too: a broken upstream often sends nulls.
"""

from __future__ import annotations

import importlib
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from modelport.core.errors import InvalidInputError
from modelport.core.profile import (
    MAX_CATEGORIES,
    OTHER,
    DatasetProfile,
    FeatureProfile,
    profile_values,
)
from modelport.monitoring.predlog_columns import REDACTED

__all__ = [
    "DriftThresholds",
    "FeatureDrift",
    "Verdict",
    "chi_squared",
    "dataset_drift",
    "feature_drift",
    "ks",
    "prediction_drift",
    "psi",
]

Verdict = Literal["drift", "ok", "insufficient_data"]
REF_FLOOR = 1e-4
MIN_EXPECTED = 5.0
FloatArray = np.ndarray[Any, np.dtype[np.float64]]


@dataclass(frozen=True, slots=True)
class DriftThresholds:
    psi: float = 0.2
    p_value: float = 0.01
    min_samples: int = 30
    missing_rate: float = 0.1

    def __post_init__(self) -> None:
        if not (self.psi > 0 and 0 < self.p_value < 1 and self.min_samples >= 1):
            raise InvalidInputError(
                f"drift thresholds need psi > 0, 0 < p_value < 1, min_samples >= 1; got {self}"
            )
        if not 0 < self.missing_rate <= 1:
            raise InvalidInputError(f"missing_rate must be in (0, 1], got {self.missing_rate}")


@dataclass(frozen=True, slots=True, kw_only=True)
class FeatureDrift:
    """One feature's scores and verdict; ``n`` counts usable values, ``missing`` the others."""

    name: str
    kind: Literal["numeric", "categorical"]
    n: int
    psi: float | None = None
    ks_stat: float | None = None
    p_value: float | None = None
    chi2: float | None = None
    verdict: Verdict
    reason: str
    missing: int = 0


# -- inputs ------------------------------------------------------------------------------------


def _stats() -> Any:
    """scipy.stats, imported on first use: it costs ~0.75 s, and a server that never
    computes drift should not pay for it at start-up."""
    return importlib.import_module("scipy.stats")


def _numbers(values: Any) -> tuple[FloatArray, int]:
    """Finite values and how many were missing (None, NaN, inf or not a number)."""
    arr = np.asarray(values)
    if arr.dtype.kind in "biuf":
        arr = arr.astype(np.float64).ravel()
    else:
        raw = arr.astype(object).ravel()
        try:
            arr = raw.astype(np.float64)
        except (TypeError, ValueError):
            arr = np.array([_to_float(v) for v in raw.tolist()], dtype=np.float64)
    good = arr[np.isfinite(arr)]
    return good, int(arr.size - good.size)


def _to_float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _present(value: Any) -> bool:
    if value is None:
        return False
    try:
        return bool(value == value)  # NaN, NaT and pandas.NA are missing
    except (TypeError, ValueError):
        return False


def _labels(values: Any) -> tuple[list[str], int]:
    """Values as strings (as ``profile_frame`` stores categories) and the missing count."""
    raw = np.asarray(values, dtype=object).ravel().tolist()
    present = [str(v) for v in raw if _present(v)]
    return present, len(raw) - len(present)


def _grid(ref: FeatureProfile) -> tuple[FloatArray, FloatArray]:
    xs = np.asarray(ref.percentiles if len(ref.percentiles) >= 2 else ref.deciles, np.float64)
    return xs, np.linspace(0.0, 1.0, xs.size)


def _cdf(xs: FloatArray, qs: FloatArray, x: FloatArray, *, left: bool = False) -> FloatArray:
    """Reference CDF at ``x`` (right-continuous), or its left limit when ``left``."""
    k = np.searchsorted(xs, x, side="left" if left else "right")
    out = np.where(k == 0, 0.0, 1.0)
    mid = (k > 0) & (k < xs.size)
    km = k[mid]
    x0, x1, q0, q1 = xs[km - 1], xs[km], qs[km - 1], qs[km]
    out[mid] = q0 + (x[mid] - x0) / (x1 - x0) * (q1 - q0)
    return out


def _reference_n(ref: FeatureProfile) -> int:
    return max(ref.count - ref.missing, 0)


def _require(ref: FeatureProfile, kind: str, n: int) -> None:
    if ref.kind != kind:
        raise InvalidInputError(f"feature {ref.name!r} is {ref.kind}; this test needs {kind}")
    if n == 0:
        raise InvalidInputError(f"no current values for feature {ref.name!r}")
    if _reference_n(ref) == 0 or (kind == "numeric" and len(ref.deciles) < 2):
        raise InvalidInputError(f"the reference profile of {ref.name!r} holds no values")


# -- statistics --------------------------------------------------------------------------------
def _psi(ref_share: FloatArray, counts: FloatArray) -> float:
    keep = (ref_share > 0) | (counts > 0)  # a bin empty on both sides says nothing
    ref_share, counts = ref_share[keep], counts[keep]
    q = np.maximum(ref_share, REF_FLOOR)
    q = q / q.sum()
    pseudo = 0.5 * q.size
    a = (counts + pseudo * q) / (counts.sum() + pseudo)
    return float(np.sum((a - q) * np.log(a / q)))


def _category_counts(ref: FeatureProfile, labels: list[str]) -> tuple[FloatArray, FloatArray]:
    """Current counts and reference shares over the reference categories, ``__other__`` last."""
    names = [c for c in ref.categories if c != OTHER] + [OTHER]
    index = {c: i for i, c in enumerate(names)}
    counts = np.zeros(len(names))
    for label, seen in Counter(labels).items():
        # 1 and 1.0 name the same category whichever way the reference spelled it
        twin = label[:-2] if label.endswith(".0") else f"{label}.0"
        counts[index.get(label, index.get(twin, len(names) - 1))] += seen
    share = np.array([float(ref.categories.get(c, 0.0)) for c in names])
    return counts, share / share.sum()


def psi(reference: FeatureProfile, values: Any) -> float:
    """Population stability index of ``values`` against the reference (see module doc)."""
    if reference.kind == "categorical":
        labels, _ = _labels(values)
        _require(reference, "categorical", len(labels))
        counts, share = _category_counts(reference, labels)
        return _psi(share, counts)
    good, _ = _numbers(values)
    _require(reference, "numeric", good.size)
    xs, qs = _grid(reference)
    edges = np.unique(np.asarray(reference.deciles[1:-1], dtype=np.float64))
    cum = np.concatenate([[0.0], _cdf(xs, qs, edges), [1.0]])
    binned = np.bincount(np.searchsorted(edges, good, side="left"), minlength=edges.size + 1)
    return _psi(np.diff(cum), binned.astype(np.float64))


def ks(reference: FeatureProfile, values: Any) -> tuple[float, float]:
    """Kolmogorov-Smirnov statistic and p-value of ``values`` against the reference CDF."""
    good, _ = _numbers(values)
    _require(reference, "numeric", good.size)
    xs, qs = _grid(reference)
    x = np.sort(good)
    n, m = x.size, _reference_n(reference)
    points = np.unique(np.concatenate([x, xs]))
    upper = np.abs(np.searchsorted(x, points, side="right") / n - _cdf(xs, qs, points))
    lower = np.abs(np.searchsorted(x, points, side="left") / n - _cdf(xs, qs, points, left=True))
    stat = float(max(upper.max(), lower.max()))
    n_eff = max(1, round(n * m / (n + m)))
    return stat, float(min(1.0, max(0.0, _stats().kstwo.sf(stat, n_eff))))


def chi_squared(reference: FeatureProfile, values: Any) -> tuple[float, float, int]:
    """Chi-squared statistic, p-value and degrees of freedom for a categorical feature."""
    labels, _ = _labels(values)
    _require(reference, "categorical", len(labels))
    counts, share = _category_counts(reference, labels)
    n, m = float(len(labels)), float(_reference_n(reference))
    cur, ref = list(counts[:-1]), list(share[:-1] * m)
    pool_cur, pool_ref = float(counts[-1]), float(share[-1] * m)
    size = min(n, m)
    for i in reversed(range(len(cur))):  # pool the categories expected fewer than 5 times
        if (cur[i] + ref[i]) / (n + m) * size < MIN_EXPECTED:
            pool_cur += cur.pop(i)
            pool_ref += ref.pop(i)
    if pool_cur + pool_ref > 0:
        if (pool_cur + pool_ref) / (n + m) * size < MIN_EXPECTED and cur:
            j = int(np.argmin(np.add(cur, ref)))
            cur[j] += pool_cur
            ref[j] += pool_ref
        else:
            cur.append(pool_cur)
            ref.append(pool_ref)
    dof = len(cur) - 1
    if dof < 1:
        return 0.0, 1.0, 0
    obs = np.array([cur, ref])
    expected = np.outer([n, m], obs.sum(axis=0) / (n + m))
    stat = float(np.sum((obs - expected) ** 2 / expected))
    return stat, float(_stats().chi2.sf(stat, dof)), dof


# -- verdicts ----------------------------------------------------------------------------------
def _missing_drift(ref: FeatureProfile, missing: int, total: int, t: DriftThresholds) -> str | None:
    ref_rate = ref.missing / ref.count if ref.count else 0.0
    if total < t.min_samples or missing / total - ref_rate < t.missing_rate:
        return None
    p = _stats().binomtest(missing, total, ref_rate, alternative="greater").pvalue
    if p >= t.p_value:
        return None
    return f"missing share {missing / total:.1%} vs {ref_rate:.1%} in the reference (p={p:.2g})"


def feature_drift(
    reference: FeatureProfile, values: Any, thresholds: DriftThresholds | None = None
) -> FeatureDrift:
    """Score one feature and decide "drift", "ok" or "insufficient_data" (see module doc)."""
    t = thresholds or DriftThresholds()
    current: Any
    if reference.kind == "numeric":
        current, missing = _numbers(values)
    else:
        current, missing = _labels(values)
    n = len(current)

    def result(verdict: Verdict, reason: str, **scores: Any) -> FeatureDrift:
        return FeatureDrift(
            name=reference.name,
            kind=reference.kind,
            n=n,
            missing=missing,
            verdict=verdict,
            reason=reason,
            **scores,
        )

    if _reference_n(reference) == 0 or (reference.kind == "numeric" and len(reference.deciles) < 2):
        return result("insufficient_data", "the reference profile holds no values for it")
    flagged = _missing_drift(reference, missing, n + missing, t)
    if n < t.min_samples:
        if flagged:
            return result("drift", flagged)
        return result("insufficient_data", f"{n} values; need at least {t.min_samples}")
    score = psi(reference, current)
    if reference.kind == "numeric":
        ks_stat, p = ks(reference, current)
        chi2, test = None, "KS"
    else:
        chi2, p, _ = chi_squared(reference, current)
        ks_stat, test = None, "chi-squared"
    verdict: Verdict = "ok"
    if score >= t.psi and p < t.p_value:
        verdict, reason = "drift", f"PSI {score:.3f} >= {t.psi} and {test} p={p:.2g} < {t.p_value}"
    elif score >= t.psi:
        reason = f"PSI {score:.3f} >= {t.psi} but {test} p={p:.2g} is not significant"
    else:
        reason = f"PSI {score:.3f} < {t.psi} ({test} p={p:.2g})"
    if flagged:
        verdict, reason = "drift", f"{flagged}; {reason}"
    return result(verdict, reason, psi=score, ks_stat=ks_stat, p_value=p, chi2=chi2)


def _columns(data: Any) -> Mapping[str, Any]:
    """A name -> values view of a DataFrame, a column mapping, or an iterable of row mappings."""
    if isinstance(data, Mapping):
        return {str(k): v for k, v in data.items()}
    if hasattr(data, "columns"):
        return {str(c): np.asarray(data[c]) for c in data.columns}
    rows = list(data)
    if not all(isinstance(r, Mapping) for r in rows):
        raise InvalidInputError(
            "drift needs a DataFrame, a mapping of column name to values, or a list of row dicts"
        )
    names = {str(k) for r in rows for k in r}
    return {name: [r.get(name) for r in rows] for name in names}


def dataset_drift(
    profile: DatasetProfile, frame_or_columns: Any, thresholds: DriftThresholds | None = None
) -> list[FeatureDrift]:
    """Drift of every profiled feature; absent ones are reported, extra columns ignored."""
    columns = _columns(frame_or_columns)
    out = []
    for ref in profile.features:
        if ref.name in columns and not _redacted(columns[ref.name]):
            out.append(feature_drift(ref, columns[ref.name], thresholds))
        else:
            out.append(
                FeatureDrift(
                    name=ref.name,
                    kind=ref.kind,
                    n=0,
                    verdict="insufficient_data",
                    reason="absent from the current data (not logged, or redacted)",
                )
            )
    return out


def _redacted(values: Any) -> bool:
    """Whether a logged column holds only the prediction log's redaction placeholder: its
    values are unknown, which is no data rather than a shift to "[redacted]"."""
    present = [v for v in np.asarray(values, dtype=object).ravel().tolist() if _present(v)]
    return bool(present) and all(v == REDACTED for v in present)


def _profile_of(name: str, values: Any) -> FeatureProfile:
    """A reference profile of raw predictions: floats (scores) numeric, labels categorical."""
    arr = np.asarray(values)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr.ravel()
    if arr.ndim != 1:
        raise InvalidInputError(
            f"prediction drift needs one value per row, got shape {arr.shape}; "
            "pass the labels or one score column"
        )
    many = arr.dtype.kind in "iu" and np.unique(arr).size > MAX_CATEGORIES
    numeric = arr.dtype.kind == "f" or many
    return profile_values(name, arr, kind="numeric" if numeric else "categorical")


def prediction_drift(
    reference_predictions: np.ndarray[Any, Any] | FeatureProfile,
    current: Any,
    thresholds: DriftThresholds | None = None,
    name: str = "prediction",
) -> FeatureDrift:
    """Drift of the model's outputs: labels compared as categories, scores as numbers."""
    ref = reference_predictions
    if not isinstance(ref, FeatureProfile):
        ref = _profile_of(name, ref)
    return feature_drift(ref, current, thresholds)
