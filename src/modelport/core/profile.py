"""Reference profiles of a dataset: what drift detection compares production data against.

Numeric features keep their quantiles (deciles for PSI bins, percentiles for a KS estimate), moments
and missing counts; categorical features keep category frequencies. A small row sample travels with
the profile (used to verify derived artifacts and to seed the dashboard). Pure functions over a
pandas-like frame.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from modelport.core.examples import encode

__all__ = ["DatasetProfile", "FeatureProfile", "profile_frame", "profile_values"]

MAX_CATEGORIES = 50
OTHER = "__other__"


@dataclass(frozen=True, slots=True)
class FeatureProfile:
    name: str
    kind: Literal["numeric", "categorical"]
    count: int
    missing: int
    min: float | None = None
    max: float | None = None
    mean: float | None = None
    std: float | None = None
    deciles: tuple[float, ...] = ()
    percentiles: tuple[float, ...] = ()
    categories: Mapping[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "count": self.count,
            "missing": self.missing,
        }
        if self.kind == "numeric":
            out.update(
                min=self.min,
                max=self.max,
                mean=self.mean,
                std=self.std,
                deciles=list(self.deciles),
                percentiles=list(self.percentiles),
            )
        else:
            out["categories"] = dict(self.categories)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureProfile:
        return cls(
            name=str(data["name"]),
            kind=data["kind"],
            count=int(data["count"]),
            missing=int(data["missing"]),
            min=data.get("min"),
            max=data.get("max"),
            mean=data.get("mean"),
            std=data.get("std"),
            deciles=tuple(data.get("deciles", ())),
            percentiles=tuple(data.get("percentiles", ())),
            categories=dict(data.get("categories", {})),
        )


@dataclass(frozen=True, slots=True)
class DatasetProfile:
    rows: int
    features: tuple[FeatureProfile, ...]
    sample: Mapping[str, Any] = field(default_factory=dict)

    def feature(self, name: str) -> FeatureProfile | None:
        return next((f for f in self.features if f.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "features": [f.to_dict() for f in self.features],
            "sample": dict(self.sample),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DatasetProfile:
        return cls(
            rows=int(data["rows"]),
            features=tuple(FeatureProfile.from_dict(f) for f in data.get("features", [])),
            sample=dict(data.get("sample", {})),
        )


def _numeric(name: str, values: np.ndarray) -> FeatureProfile:
    arr = values.astype(np.float64)
    mask = np.isfinite(arr)
    good = arr[mask]
    missing = int(arr.size - good.size)
    if good.size == 0:
        return FeatureProfile(name=name, kind="numeric", count=int(arr.size), missing=missing)
    return FeatureProfile(
        name=name,
        kind="numeric",
        count=int(arr.size),
        missing=missing,
        min=float(good.min()),
        max=float(good.max()),
        mean=float(good.mean()),
        std=float(good.std()),
        deciles=tuple(float(q) for q in np.quantile(good, np.linspace(0, 1, 11))),
        percentiles=tuple(float(q) for q in np.quantile(good, np.linspace(0, 1, 101))),
    )


def _categorical(name: str, values: np.ndarray) -> FeatureProfile:
    present = [v for v in values.tolist() if v is not None and v == v]
    missing = len(values) - len(present)
    uniques, counts = np.unique(
        np.asarray([str(v) for v in present], dtype=object), return_counts=True
    )
    order = np.argsort(-counts, kind="stable")
    total = max(len(present), 1)
    freqs: dict[str, float] = {}
    for i in order[:MAX_CATEGORIES]:
        freqs[str(uniques[i])] = float(counts[i]) / total
    rest = (
        float(counts[order[MAX_CATEGORIES:]].sum()) / total if len(order) > MAX_CATEGORIES else 0.0
    )
    if rest:
        freqs[OTHER] = rest
    return FeatureProfile(
        name=name, kind="categorical", count=len(values), missing=missing, categories=freqs
    )


def profile_values(
    name: str, values: Any, kind: Literal["auto", "numeric", "categorical"] = "auto"
) -> FeatureProfile:
    """Profile one column. ``auto``: numbers are numeric, anything else categorical."""
    arr = np.asarray(values)
    if kind == "numeric" or (kind == "auto" and arr.dtype.kind in "biuf"):
        return _numeric(name, arr)
    return _categorical(name, arr)


def profile_frame(frame: Any, sample_rows: int = 256, seed: int = 0) -> DatasetProfile:
    """Profile every column of a pandas DataFrame (or anything with ``columns`` and ``[]``)."""
    features = [profile_values(str(col), frame[col].to_numpy()) for col in frame.columns]
    rows = len(frame)
    if rows > sample_rows:
        idx = np.sort(np.random.default_rng(seed).choice(rows, size=sample_rows, replace=False))
        sample = frame.iloc[idx]
    else:
        sample = frame
    return DatasetProfile(rows=rows, features=tuple(features), sample=encode(sample))
