"""Rows of the prediction log database to and from domain values (pure; no database access)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pandas as pd

from modelport.core.errors import InvalidInputError, NotFoundError
from modelport.monitoring.accuracy import AccuracyStats, LabeledPrediction, WindowAccuracy
from modelport.monitoring.feedback import FeedbackItem
from modelport.monitoring.predlog_encode import encode_columns
from modelport.monitoring.predlog_record import PredictionRecord

__all__ = [
    "PREFERRED_OUTPUTS",
    "AccuracyReport",
    "FeedbackResult",
    "LogCounts",
    "check_label_rows",
    "check_time",
    "default_log_url",
    "feedback_json",
    "frame_of",
    "labeled_rows",
    "prediction_row",
]

PREFERRED_OUTPUTS = ("label", "predictions", "predict", "prediction", "output_label")


@dataclass(frozen=True, slots=True)
class FeedbackResult:
    """``accepted``: distinct ids whose label was stored; ``unknown_ids``: ids with no logged
    prediction of the model (not stored), in the order given."""

    accepted: int
    unknown_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class AccuracyReport:
    model: str
    overall: AccuracyStats
    by_version: Mapping[str, AccuracyStats]
    windows: tuple[WindowAccuracy, ...]


@dataclass(frozen=True, slots=True)
class LogCounts:
    """Logged requests of one model version and how many of them have ground truth."""

    model: str
    version: str
    predictions: int
    labeled: int
    first_at: datetime
    last_at: datetime


def default_log_url(home: Path) -> str:
    """The embedded prediction log: ``monitoring.db`` under the modelport home (a file apart
    from the registry's database, so logging never waits for registry writes)."""
    return f"sqlite:///{(home / 'monitoring.db').resolve()}"


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def check_time(value: datetime | None, name: str) -> datetime | None:
    if value is not None and (not isinstance(value, datetime) or value.utcoffset() is None):
        raise InvalidInputError(f"{name} must be a timezone-aware datetime (UTC), got a naive one")
    return value


def prediction_row(record: PredictionRecord, position: int) -> dict[str, Any]:
    """The ``mp_predictions`` row of a record (converted here unless it already was)."""
    if not isinstance(record.time, datetime) or record.time.utcoffset() is None:
        raise InvalidInputError(
            f"prediction record {position} of the batch has a naive time; records carry "
            "timezone-aware UTC times"
        )
    truncated = record.truncated
    inputs = outputs = None
    if record.inputs is not None:
        encoded, cut = encode_columns(record.inputs, record.input_names)
        inputs, truncated = encoded.text, truncated or cut
    if record.outputs is not None:
        encoded, cut = encode_columns(record.outputs)
        outputs, truncated = encoded.text, truncated or cut
    return {
        "model": record.model,
        "request_id": record.request_id,
        "version": record.version,
        "endpoint": record.endpoint,
        "predicted_at": record.time,
        "latency_s": float(record.latency_s),
        "n_rows": int(record.rows),
        "ok": bool(record.ok),
        "truncated": truncated,
        "inputs": inputs,
        "outputs": outputs,
    }


def feedback_json(item: FeedbackItem) -> str:
    label = list(item.label) if isinstance(item.label, tuple) else item.label
    return _json(label)


def check_label_rows(model: str, item: FeedbackItem, rows: set[int]) -> None:
    """Refuse a label whose shape does not fit the logged request (one label per row)."""
    count = len(item.label) if isinstance(item.label, tuple) else 1
    if count in rows:
        return
    logged = "/".join(str(n) for n in sorted(rows))
    shown = item.id[:64]
    if isinstance(item.label, tuple):
        raise InvalidInputError(
            f"feedback for request {shown!r} of model {model!r} has {count} labels but the "
            f"request had {logged} row(s); send one label per row"
        )
    raise InvalidInputError(
        f"feedback for request {shown!r} of model {model!r} is a single label but the request "
        f"had {logged} rows; send a list with one label per row"
    )


def _pick(columns: Mapping[str, Any], output: str | None) -> str | None:
    if output is not None:
        return output if output in columns else None
    for name in PREFERRED_OUTPUTS:
        if name in columns:
            return name
    return next(iter(columns), None)


def labeled_rows(
    model: str, rows: Iterable[Sequence[Any]], output: str | None
) -> list[LabeledPrediction]:
    """``(version, predicted_at, outputs JSON, label JSON)`` joined rows, one per request row.

    Rows past a truncated record's stored rows have no prediction and are left out."""
    out: list[LabeledPrediction] = []
    names: set[str] = set()
    any_rows = False
    for version, at, outputs_json, label_json in rows:
        any_rows = True
        columns = orjson.loads(outputs_json)
        names.update(columns)
        name = _pick(columns, output)
        if name is None:
            continue
        values = columns[name]
        label = orjson.loads(label_json)
        labels = label if isinstance(label, list) else [label]
        out.extend(
            LabeledPrediction(version, p, y, at) for p, y in zip(values, labels, strict=False)
        )
    if output is not None and any_rows and not out and output not in names:
        shown = ", ".join(sorted(names)[:20]) or "none"
        raise NotFoundError(
            f"output {output!r} is not among the logged outputs of model {model!r} ({shown}); "
            "name one of those, or leave the output out to use the default"
        )
    return out


def frame_of(chunks: Iterable[str], limit: int) -> pd.DataFrame:
    """A DataFrame of JSON column chunks (newest first), oldest row first, at most ``limit``
    rows (the newest); columns missing from a chunk are None there."""
    taken: list[dict[str, list[Any]]] = []
    total = 0
    for text in chunks:
        columns = orjson.loads(text)
        n = max((len(v) for v in columns.values()), default=0)
        if not n:
            continue
        keep = min(n, limit - total)
        taken.append({k: (v + [None] * (n - len(v)))[n - keep :] for k, v in columns.items()})
        total += keep
        if total >= limit:
            break
    data: dict[str, list[Any]] = {}
    done = 0
    for columns in reversed(taken):
        n = len(next(iter(columns.values())))
        for name in columns:
            data.setdefault(name, [None] * done)
        for name, values in data.items():
            values.extend(columns.get(name, [None] * n))
        done += n
    return pd.DataFrame(data)
