"""The SQL prediction log: a ``PredictionSink`` plus ground truth, joined row by row.

``SqlPredictionStore`` works on SQLite (embedded: its own ``monitoring.db`` next to the registry's
database) and PostgreSQL (team mode; the engine or URL comes from the edge). Predictions are unique
per (model, request id, version): a repeat replaces the earlier row, and a request mirrored to a
shadow version is logged once per version, so feedback for its id labels both.

Feedback is stored per (model, request id). A label for an id with no logged prediction of that
model is reported back in ``unknown_ids`` and not stored; a later label replaces an earlier one.
A label is one value (one-row request) or a list with one value per row. ``labeled`` joins
feedback to successful predictions and expands multi-row requests to one pair per row; the
prediction is taken from the named output, else the first of ``PREFERRED_OUTPUTS`` logged, else
the first output. Times are stored in UTC; ``since`` is inclusive, ``until`` exclusive.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Literal

import pandas as pd
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

from modelport.core.clock import Clock, SystemClock
from modelport.core.errors import InvalidInputError
from modelport.monitoring.accuracy import (
    LabeledPrediction,
    Task,
    accuracy_by_version,
    accuracy_by_window,
    accuracy_stats,
)
from modelport.monitoring.feedback import FeedbackItem
from modelport.monitoring.logstore_batch import BatchInsert
from modelport.monitoring.logstore_queries import (
    counts_query,
    ids_query,
    labeled_query,
    prune_statements,
    recent_query,
    upsert_feedback,
)
from modelport.monitoring.logstore_rows import (
    PREFERRED_OUTPUTS,
    AccuracyReport,
    FeedbackResult,
    LogCounts,
    check_label_rows,
    check_time,
    default_log_url,
    feedback_json,
    frame_of,
    labeled_rows,
    prediction_row,
)
from modelport.monitoring.logstore_schema import (
    create_schema,
    make_log_engine,
    mask_url,
    read_only,
    translate,
)
from modelport.monitoring.predlog_record import PredictionRecord

__all__ = [
    "PREFERRED_OUTPUTS",
    "AccuracyReport",
    "FeedbackResult",
    "LogCounts",
    "SqlPredictionStore",
    "default_log_url",
]

MAX_RECENT_ROWS = 1_000_000
_CHUNK = 500  # ids per IN (...) lookup: well under SQLite's bound-parameter limit


def _name(value: str, what: str) -> str:
    if not isinstance(value, str) or not value or len(value) > 256:
        raise InvalidInputError(f"{what} must be a non-empty string of at most 256 characters")
    return value


class SqlPredictionStore:
    """Prediction records and their ground truth in one SQL database (SQLite or PostgreSQL).

    Built from a URL, the store owns its engine (``close`` disposes it); an ``Engine`` given by
    the caller stays the caller's (make it with ``hide_parameters=True`` so that database errors
    never carry logged values). Call ``create()`` (or use ``open``) before writing.
    """

    stores_encoded = True  # PredictionLog hands it records whose columns are JSON text already

    def __init__(self, engine_or_url: Engine | str, *, clock: Clock | None = None) -> None:
        if isinstance(engine_or_url, Engine):
            self._engine, self._owned = engine_or_url, False
        else:
            self._engine, self._owned = make_log_engine(engine_or_url), True
        self._reader = read_only(self._engine)
        self._dialect = self._engine.dialect.name
        self._insert = BatchInsert(self._dialect)
        self._clock = clock or SystemClock()

    @classmethod
    def open(cls, engine_or_url: Engine | str, *, clock: Clock | None = None) -> SqlPredictionStore:
        """A store whose schema is created (if missing)."""
        store = cls(engine_or_url, clock=clock)
        try:
            store.create()
        except BaseException:
            store.close()
            raise
        return store

    @property
    def url(self) -> str:
        """The database URL with its password hidden."""
        return mask_url(self._engine.url)

    def create(self) -> None:
        """Create the tables if missing (idempotent; safe when processes start together)."""
        with self._translated("creating the prediction log tables"):
            create_schema(self._engine, self._clock.now())

    def close(self) -> None:
        if self._owned:
            self._engine.dispose()

    def __enter__(self) -> SqlPredictionStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def _translated(self, action: str) -> Iterator[None]:
        try:
            yield
        except DBAPIError as exc:
            raise translate(exc, self._engine.url, action) from exc

    @contextmanager
    def _begin(self, action: str, *, reading: bool = False) -> Iterator[Connection]:
        with self._translated(action), (self._reader if reading else self._engine).begin() as conn:
            yield conn

    # -- the sink -----------------------------------------------------------------------------
    def write(self, records: Sequence[PredictionRecord]) -> None:
        """Insert a batch of records in one transaction (a repeat of a key replaces the row).
        Records that carry the ``row`` this store's ``encode_row`` made are not encoded again."""
        rows: dict[tuple[str, str, str], str] = {}
        for position, record in enumerate(records):
            key = (record.model, record.request_id, record.version)
            rows[key] = record.row if record.row is not None else self._encode(record, position)
        if not rows:
            return
        payload = self._insert.payload(rows.values())  # one JSON array: see logstore_batch
        with self._begin("writing prediction records") as conn:
            conn.exec_driver_sql(self._insert.sql, (payload,))

    def encode_row(self, record: PredictionRecord) -> str:
        """The stored form of ``record`` (converted here unless it was), for ``write``: a
        prediction log may make it when the record is submitted, so that its writer thread
        only joins rows (``PredictionLog(convert_on_submit=True)``)."""
        return self._encode(record, 0)

    def _encode(self, record: PredictionRecord, position: int) -> str:
        return self._insert.encode(prediction_row(record, position))

    # -- ground truth -------------------------------------------------------------------------
    def add_feedback(self, model: str, items: Iterable[FeedbackItem]) -> FeedbackResult:
        """Store true labels of logged requests of ``model``; all or nothing when one does not
        fit its request (``InvalidInputError``)."""
        _name(model, "the model name")
        latest = {item.id: item for item in items}  # a later label for an id wins
        now = self._clock.now()
        with self._begin("storing feedback") as conn:
            rows_of = self._rows_of(conn, model, list(latest))
            values = []
            for request_id, item in latest.items():
                if request_id in rows_of:
                    check_label_rows(model, item, rows_of[request_id])
                    label = feedback_json(item)
                    values.append(
                        {
                            "model": model,
                            "request_id": request_id,
                            "label": label,
                            "received_at": now,
                        }
                    )
            if values:
                conn.execute(upsert_feedback(self._dialect), values)
        unknown = tuple(i for i in latest if i not in rows_of)
        return FeedbackResult(accepted=len(values), unknown_ids=unknown)

    def _rows_of(self, conn: Connection, model: str, ids: list[str]) -> dict[str, set[int]]:
        found: dict[str, set[int]] = {}
        for start in range(0, len(ids), _CHUNK):
            for request_id, n_rows in conn.execute(ids_query(model, ids[start : start + _CHUNK])):
                found.setdefault(request_id, set()).add(n_rows)
        return found

    def labeled(
        self,
        model: str,
        version: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        output: str | None = None,
    ) -> list[LabeledPrediction]:
        """Predictions joined to their labels, one per request row, oldest first."""
        query = labeled_query(model, version, since, until)
        with self._begin("reading labeled predictions", reading=True) as conn:
            rows = conn.execute(query).all()
        return labeled_rows(model, rows, output)

    def accuracy(
        self,
        model: str,
        window_s: float,
        since: datetime | None = None,
        until: datetime | None = None,
        task: Task = "auto",
        *,
        version: str | None = None,
        output: str | None = None,
        max_windows: int | None = None,
    ) -> AccuracyReport:
        """Accuracy (or MAE/RMSE) overall, per version and per epoch-aligned window."""
        records = self.labeled(model, version, since, until, output)
        overall = accuracy_stats(((r.prediction, r.label) for r in records), task)
        windows = accuracy_by_window(
            records, window_s, self._clock, task=overall.task, max_windows=max_windows
        )
        by_version = accuracy_by_version(records, overall.task)
        return AccuracyReport(model, overall, by_version, tuple(windows))

    # -- data for drift -----------------------------------------------------------------------
    def recent_inputs(
        self,
        model: str,
        version: str | None = None,
        since: datetime | None = None,
        limit: int = 10_000,
        *,
        until: datetime | None = None,
    ) -> pd.DataFrame:
        """The newest logged input rows (at most ``limit``), oldest first, one column each."""
        return self._recent("inputs", model, version, since, until, limit)

    def recent_outputs(
        self,
        model: str,
        version: str | None = None,
        since: datetime | None = None,
        limit: int = 10_000,
        *,
        until: datetime | None = None,
    ) -> pd.DataFrame:
        """The newest logged output rows (at most ``limit``), oldest first, one column each."""
        return self._recent("outputs", model, version, since, until, limit)

    def _recent(
        self,
        which: Literal["inputs", "outputs"],
        model: str,
        version: str | None,
        since: datetime | None,
        until: datetime | None,
        limit: int,
    ) -> pd.DataFrame:
        if (
            isinstance(limit, bool)
            or not isinstance(limit, int)
            or not 0 < limit <= MAX_RECENT_ROWS
        ):
            raise InvalidInputError(f"limit must be a whole number from 1 to {MAX_RECENT_ROWS}")
        query = recent_query(which, model, version, since, until, limit)
        with self._begin("reading recent predictions", reading=True) as conn:
            result = conn.execution_options(yield_per=100).execute(query)
            try:
                return frame_of((row[0] for row in result), limit)
            finally:
                result.close()  # the newest rows may be enough: end the server-side cursor

    # -- housekeeping -------------------------------------------------------------------------
    def prune(self, older_than: datetime) -> int:
        """Delete predictions logged before ``older_than`` and feedback left without any;
        returns the number of predictions deleted."""
        if check_time(older_than, "older_than") is None:
            raise InvalidInputError("older_than is required")
        old, orphans = prune_statements(older_than)
        with self._begin("pruning the prediction log") as conn:
            deleted = conn.execute(old)
            conn.execute(orphans)
        return int(deleted.rowcount)

    def counts(self, model: str | None = None) -> list[LogCounts]:
        """Logged and labeled requests per model and version, sorted by model then version."""
        query = counts_query(model)
        with self._begin("counting logged predictions", reading=True) as conn:
            rows = conn.execute(query).all()
        return [LogCounts(*row) for row in rows]
