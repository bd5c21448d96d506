"""A prediction sink that converts and writes records in a child process.

Converting a record to JSON columns and inserting it costs tens of microseconds of Python, and
in the server's process that time is taken from the event loop: both threads need the GIL
(measured with a thread writer at ~3,000 req/s: a third of the throughput and the p95 tripled).
``ProcessSink`` ships each batch to a child process instead: the writer thread only encodes the
raw arrays with orjson (a few microseconds a record, most of it in C) and waits for the child's
answer with the GIL released. The child redacts, caps, converts and writes exactly as
``prepare_record`` and ``SqlPredictionStore.write`` do in process.

Inputs and outputs travel as they are when they are numeric arrays (or frames of one numeric
dtype); anything else is converted to redacted ``Columns`` before it leaves, so nothing about
a value's meaning changes on the way. The child is spawned (not forked: the server has threads),
ignores SIGINT/SIGTERM (its parent decides when it stops, after the last batch), exits when the
pipe closes, and is started again for the next batch if it dies.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import signal
import threading
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from typing import Any

import numpy as np
import orjson

from modelport.core.errors import StoreUnavailableError
from modelport.monitoring.predlog_columns import (
    MAX_ROWS,
    MAX_VALUES,
    Columns,
    numeric_block,
    to_columns,
)
from modelport.monitoring.predlog_record import PredictionRecord, prepare_record

__all__ = ["ProcessSink"]

log = logging.getLogger("modelport.monitoring")
_NUMPY = orjson.OPT_SERIALIZE_NUMPY
_FIELDS = ("request_id", "endpoint", "model", "version", "latency_s", "rows", "ok", "truncated")


class ProcessSink:
    """``PredictionSink`` whose conversion and writes run in a child process (see module doc).

    ``write`` returns the ``(model, version)`` of records the child could not convert (the
    others are written) and raises ``StoreUnavailableError`` when the whole batch was lost.
    """

    converts = True  # PredictionLog hands it raw records: redaction and caps happen here

    def __init__(
        self,
        url: str,
        *,
        redact: Collection[str] = (),
        max_rows: int = MAX_ROWS,
        max_values: int = MAX_VALUES,
        answer_timeout_s: float = 120.0,
    ) -> None:
        self._redact = frozenset(str(k) for k in redact)
        self._caps = {"max_rows": max_rows, "max_values": max_values}
        self._args = (url, tuple(sorted(self._redact)), max_rows, max_values)
        self._timeout = answer_timeout_s
        self._ctx = multiprocessing.get_context("spawn")
        self._lock = threading.Lock()
        self._conn: Connection | None = None
        self._proc: multiprocessing.process.BaseProcess | None = None

    def write(self, records: Sequence[PredictionRecord]) -> list[tuple[str, str]]:
        if not records:
            return []
        blob = orjson.dumps([self._portable(r) for r in records], option=_NUMPY)
        with self._lock:
            conn = self._ensure()
            try:
                conn.send_bytes(blob)
                if not conn.poll(self._timeout):
                    raise TimeoutError
                reply = orjson.loads(conn.recv_bytes())
            except (EOFError, OSError, TimeoutError) as exc:
                self._stop()
                raise StoreUnavailableError(
                    "the prediction log writer process stopped or did not answer; a new one "
                    "starts with the next batch"
                ) from exc
        if reply.get("error"):
            raise StoreUnavailableError(str(reply["error"]))
        return [(str(m), str(v)) for m, v in reply.get("rejected", [])]

    def close(self, timeout: float = 10.0) -> None:
        """Let the child finish its batch and exit (killed after ``timeout``)."""
        with self._lock:
            self._stop(timeout)

    # -- encoding -----------------------------------------------------------------------------
    def _portable(self, record: PredictionRecord) -> dict[str, Any]:
        item: dict[str, Any] = {f: getattr(record, f) for f in _FIELDS}
        item["time"] = record.time.timestamp()
        item["names"] = record.input_names
        item["inputs"], item["inputs_columns"], names = self._payload(
            record.inputs, record.input_names
        )
        if names is not None:
            item["names"] = names
        item["outputs"], item["outputs_columns"], _ = self._payload(record.outputs, None)
        return item

    def _payload(
        self, value: Any, names: tuple[str, ...] | None
    ) -> tuple[Any, bool, list[str] | None]:
        """``(what to send, already converted, column names of a frame)``: numeric arrays
        as they are, everything else as redacted columns converted here."""
        if value is None or isinstance(value, Columns):
            return value, value is not None, None
        if _numeric(value):
            return np.ascontiguousarray(value), False, None
        if isinstance(value, Mapping) and all(_numeric(v) for v in value.values()):
            return {str(k): np.ascontiguousarray(v) for k, v in value.items()}, False, None
        frame = numeric_block(value, names) if not isinstance(value, np.ndarray) else None
        if frame is not None and _numeric(frame[0]):  # a one-dtype DataFrame: block, names
            block, labels = frame
            return np.ascontiguousarray(block), False, labels
        columns, _ = to_columns(value, names, redact=self._redact, **self._caps)
        return columns, True, None

    # -- the child ----------------------------------------------------------------------------
    def _ensure(self) -> Connection:
        if self._conn is not None and self._proc is not None and self._proc.is_alive():
            return self._conn
        self._stop()
        parent, child = self._ctx.Pipe(duplex=True)
        proc = self._ctx.Process(
            target=_child_main, args=(child, *self._args), name="modelport-predlog", daemon=True
        )
        proc.start()
        child.close()
        self._conn, self._proc = parent, proc
        return parent

    def _stop(self, timeout: float = 2.0) -> None:
        conn, proc, self._conn, self._proc = self._conn, self._proc, None, None
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.send_bytes(b"")
            conn.close()
        if proc is not None:
            proc.join(timeout)
            if proc.is_alive():
                log.warning("the prediction log writer process did not stop; killing it")
                proc.kill()
                proc.join(timeout)


def _numeric_kind(dtype: np.dtype[Any]) -> bool:
    return dtype.kind in "biuf" and dtype.isnative


def _numeric(value: Any) -> bool:
    return isinstance(value, np.ndarray) and _numeric_kind(value.dtype)


def _child_main(
    conn: Connection, url: str, redact: tuple[str, ...], rows: int, values: int
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops it after the last batch
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    from modelport.monitoring.logstore import SqlPredictionStore

    store = SqlPredictionStore(url)
    caps = {"redact": frozenset(redact), "max_rows": rows, "max_values": values}
    try:
        while True:
            try:
                blob = conn.recv_bytes()
            except (EOFError, OSError):
                return
            if not blob:
                return
            conn.send_bytes(orjson.dumps(_write_batch(store, blob, caps)))
    finally:
        store.close()


def _write_batch(store: Any, blob: bytes, caps: dict[str, Any]) -> dict[str, Any]:
    ready: list[PredictionRecord] = []
    rejected: list[tuple[str, str]] = []
    for item in orjson.loads(blob):
        try:
            ready.append(prepare_record(_record(item), **caps))
        except Exception:  # counted by the parent; the others are still written
            rejected.append((str(item.get("model")), str(item.get("version"))))
    try:
        if ready:
            store.write(ready)
    except Exception as exc:
        return {"error": f"writing to the prediction log failed ({type(exc).__name__})"}
    return {"rejected": rejected}


def _record(item: Mapping[str, Any]) -> PredictionRecord:
    names = item.get("names")
    return PredictionRecord(
        request_id=item["request_id"],
        endpoint=item["endpoint"],
        model=item["model"],
        version=item["version"],
        time=datetime.fromtimestamp(float(item["time"]), UTC),
        latency_s=float(item["latency_s"]),
        rows=int(item["rows"]),
        ok=bool(item["ok"]),
        inputs=_value(item.get("inputs"), item.get("inputs_columns")),
        outputs=_value(item.get("outputs"), item.get("outputs_columns")),
        input_names=tuple(names) if names is not None else None,
        truncated=bool(item.get("truncated")),
    )


def _value(value: Any, converted: Any) -> Any:
    if value is None:
        return None
    if converted:
        return Columns(value)
    if isinstance(value, Mapping):
        return {str(k): np.asarray(v) for k, v in value.items()}
    return np.asarray(value)
