"""A batch of prediction rows inserted by one statement with one JSON parameter.

The prediction log is written from a thread of the server's process, which shares the GIL with
the event loop. ``executemany`` binds and steps one row at a time and lets the GIL go around
every step; each time, the loop (which lets it go too, in every socket read and BLAS call) and
the writer hand it back and forth, and every hand-over costs the loop a thread wake-up. Measured
with a scikit-learn LogisticRegression at concurrency 1: ~50 µs of server CPU a request went to
writing, though the rows themselves take ~12 µs. Here the writer encodes the whole batch into
one JSON array (orjson, in C) and the database unpacks it in a single statement (SQLite's
``json_each``, PostgreSQL's ``json_to_recordset``), so the GIL is let go once per batch, for
the whole of the database's work.

The statement text is built from the table's own column names, never from values; the values
travel only in the one bound parameter. Rows keep the types the SQLAlchemy columns store:
SQLite gets times as the naive UTC text SQLAlchemy writes for ``DateTime`` and booleans as 0/1
(``json_extract`` turns JSON true/false into those), PostgreSQL gets ``timestamptz`` and
``boolean`` through the record's column types.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import orjson

from modelport.monitoring.logstore_schema import PREDICTION_KEY as KEY
from modelport.monitoring.logstore_schema import predictions

__all__ = ["BATCH_COLUMNS", "BatchInsert"]

BATCH_COLUMNS: tuple[str, ...] = tuple(str(c.name) for c in predictions.columns if c.name != "id")
# The statements are built from these names, never from values: they must be plain identifiers.
if not all(n.isidentifier() for n in (*BATCH_COLUMNS, predictions.name)):  # pragma: no cover
    raise RuntimeError("prediction log column names must be identifiers")
_PG_TYPES = {
    "predicted_at": "timestamptz",
    "latency_s": "double precision",
    "n_rows": "integer",
    "ok": "boolean",
    "truncated": "boolean",
}


def _sqlite_sql() -> str:
    columns = ", ".join(BATCH_COLUMNS)
    picks = ", ".join(f"json_extract(value, '$[{i}]')" for i in range(len(BATCH_COLUMNS)))
    updates = ", ".join(f"{c} = excluded.{c}" for c in BATCH_COLUMNS if c not in KEY)
    # "WHERE true": SQLite's parser needs it between a SELECT and ON CONFLICT
    # names from the table definition only (checked above): no value is ever interpolated
    return (
        f"INSERT INTO {predictions.name} ({columns}) SELECT {picks} FROM json_each(?) "  # noqa: S608
        f"WHERE true ON CONFLICT ({', '.join(KEY)}) DO UPDATE SET {updates}"
    )


def _postgres_sql() -> str:
    columns = ", ".join(BATCH_COLUMNS)
    record = ", ".join(f"{c} {_PG_TYPES.get(c, 'text')}" for c in BATCH_COLUMNS)
    updates = ", ".join(f"{c} = excluded.{c}" for c in BATCH_COLUMNS if c not in KEY)
    return (
        f"INSERT INTO {predictions.name} ({columns}) SELECT {columns} FROM "  # noqa: S608
        f"json_to_recordset(%s::json) AS r({record}) "
        f"ON CONFLICT ({', '.join(KEY)}) DO UPDATE SET {updates}"
    )


def _sqlite_time(value: datetime) -> str:
    """The text SQLAlchemy's SQLite ``DateTime`` stores: naive UTC, microseconds always."""
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.replace(tzinfo=None).isoformat(" ", "microseconds")


_pick = operator.itemgetter(*BATCH_COLUMNS)
_TIME = BATCH_COLUMNS.index("predicted_at")


class BatchInsert:
    """The upsert of a batch of prediction rows for one dialect: ``sql`` takes one
    parameter, the JSON array ``payload`` joins from rows that ``encode`` made one by one
    (a row is a dict keyed by ``BATCH_COLUMNS``, its time aware)."""

    def __init__(self, dialect: str) -> None:
        if dialect not in ("sqlite", "postgresql"):
            raise ValueError(f"the prediction log supports SQLite and PostgreSQL, not {dialect}")
        self.dialect = dialect
        self.sql = _sqlite_sql() if dialect == "sqlite" else _postgres_sql()

    def encode(self, row: dict[str, Any]) -> str:
        """One row as the JSON the statement unpacks: an array in column order (SQLite) or
        an object (PostgreSQL)."""
        if self.dialect == "sqlite":
            picked = list(_pick(row))
            picked[_TIME] = _sqlite_time(picked[_TIME])
            return orjson.dumps(picked).decode()
        return orjson.dumps(dict(zip(BATCH_COLUMNS, _pick(row), strict=True))).decode()

    @staticmethod
    def payload(encoded: Iterable[str]) -> str:
        """The statement's parameter: the encoded rows as one JSON array."""
        return "[" + ",".join(encoded) + "]"
