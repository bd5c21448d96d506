"""The prediction log: records of answered requests, sampled, redacted, written in the background.

``PredictionLog.submit`` runs on the server's event loop: it hashes the request id (the sampling
decision) and appends to a bounded queue under a lock that the writer holds for a few list
operations; it never waits for I/O and never raises for a full queue or a failing sink. A
daemon thread takes batches off the queue, converts each record's inputs and outputs to JSON-able
columns (``predlog_columns``: capped, redacted) and hands them to a ``PredictionSink``.

With ``convert_on_submit`` the conversion (a few microseconds for the usual numeric request:
``predlog_encode``) runs in ``submit`` instead, on the caller's thread, and the writer only
writes. That is what the server uses: a writer thread converting records holds the GIL for
whole records at a time, and whenever the event loop lets the GIL go (a BLAS call inside a
model, a read from the socket) it has to wait for the writer to hand it back, which cost more
than the conversion itself (measured with a scikit-learn LogisticRegression at c=1: ~100 µs a
request with the thread converting, against ~55 µs with monitoring's other work alone).

What happens to every submitted record is counted (``LogStats``); after ``flush``,
``submitted == written + sampled_out + dropped_full + dropped_error + dropped_closed +
queue_depth``. Records lost to a full queue, a failing sink or a closed log are also reported
through ``on_drop(model, version, n)`` (the server counts them in Prometheus). Sink failures are
logged at most once per ``log_interval_s`` with the error's type (and message for modelport
errors, which never hold payload values) but never the records.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from modelport.core.clock import Clock, SystemClock
from modelport.core.errors import InvalidInputError, ModelportError
from modelport.monitoring.predlog_columns import MAX_ROWS, MAX_VALUES, REDACTED
from modelport.monitoring.predlog_record import (
    MAX_FIELD_LENGTH,
    PredictionRecord,
    PredictionSink,
    check_sample_rate,
    prepare_record,
    sample_in,
)

__all__ = [
    "MAX_FIELD_LENGTH",
    "REDACTED",
    "LogStats",
    "PredictionLog",
    "PredictionRecord",
    "PredictionSink",
    "check_sample_rate",
    "prepare_record",
    "sample_in",
]

# The writer shares the GIL with the server's event loop. Python hands a contended GIL over
# only every 5 ms, so a writer converting hundreds of records in one go stalls requests by up
# to that much (measured: p95 0.33 -> 2.9 ms at 3,000 req/s). It gives the GIL back after every
# few records, and writes in small transactions, so a request waits at most ~1 ms for it.
_YIELD_EVERY = 16
_WRITE_CHUNK = 64

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LogStats:
    """What became of submitted records (``dropped_closed``: submitted after ``close``)."""

    submitted: int
    written: int
    sampled_out: int
    dropped_full: int
    dropped_error: int
    dropped_closed: int
    queue_depth: int


def _describe(exc: BaseException) -> str:
    """An error without payload values: modelport messages are safe, others give the type."""
    if isinstance(exc, ModelportError):
        return f"{type(exc).__name__}: {exc.message}"
    return type(exc).__name__


def _positive(name: str, value: float, *, integer: bool) -> None:
    ok = isinstance(value, int) if integer else isinstance(value, int | float)
    if isinstance(value, bool) or not ok or not (math.isfinite(value) and value > 0):
        kind = "a positive whole number" if integer else "a positive number"
        raise InvalidInputError(f"prediction log {name} must be {kind}, got {value!r}")


class PredictionLog:
    """Bounded, sampled, redacting background writer of prediction records into a sink."""

    def __init__(
        self,
        sink: PredictionSink,
        *,
        sample_rate: float = 1.0,
        redact: Collection[str] = (),
        capacity: int = 10_000,
        batch_size: int = 256,
        batch_bytes: int = 1 << 20,
        capacity_bytes: int = 64 << 20,
        flush_interval_s: float = 1.0,
        max_rows: int = MAX_ROWS,
        max_values: int = MAX_VALUES,
        on_drop: Callable[[str, str, int], None] | None = None,
        clock: Clock | None = None,
        log_interval_s: float = 60.0,
        convert_on_submit: bool = False,
    ) -> None:
        counts = {
            "capacity": capacity,
            "batch_size": batch_size,
            "batch_bytes": batch_bytes,
            "capacity_bytes": capacity_bytes,
            "max_rows": max_rows,
        }
        for name, value in {**counts, "max_values": max_values}.items():
            _positive(name, value, integer=True)
        _positive("flush_interval_s", flush_interval_s, integer=False)
        _positive("log_interval_s", log_interval_s, integer=False)
        self._sink = sink
        self._rate = check_sample_rate(sample_rate)
        self._redact = frozenset(str(k) for k in redact)
        self._capacity, self._batch_size = capacity, batch_size
        # Rows made on submit (``row``) are joined into one statement under the GIL: a batch
        # holds at most ``batch_bytes`` of them, so a burst of large requests (64 rows each:
        # ~25 kB a row) never stalls the loop for the tens of milliseconds 2,048 of them take.
        self._batch_bytes = batch_bytes
        self._capacity_bytes = capacity_bytes  # and the queue at most this much of them
        self._queued_bytes = 0
        self._interval = float(flush_interval_s)
        self._caps: dict[str, Any] = {"max_rows": max_rows, "max_values": max_values}
        self._on_drop = on_drop
        self._clock = clock or SystemClock()
        self._log_interval = float(log_interval_s)
        # A converting sink (ProcessSink) redacts and converts in its own process: it gets
        # the raw records. A sink that stores JSON text (the SQL store) takes it encoded.
        self._converts = bool(getattr(sink, "converts", False))
        self._encode = bool(getattr(sink, "stores_encoded", False))
        self._early = bool(convert_on_submit) and not self._converts
        # ... and a sink that encodes its rows itself has them made on submit too
        self._encode_row: Callable[[PredictionRecord], str] | None = (
            getattr(sink, "encode_row", None) if self._early else None
        )
        self._cond = threading.Condition()
        self._queue: deque[PredictionRecord] = deque()
        self._counts = Counter[str]()
        self._queued = self._handled = 0  # sequence numbers for flush
        self._flush_wanted = self._closing = self._stopped = False
        self._thread: threading.Thread | None = None
        self._report_lock = threading.Lock()
        self._last_report: float | None = None
        self._unreported = 0

    # -- owner ------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the writer thread (idempotent)."""
        with self._cond:
            if self._closing:
                raise RuntimeError("this prediction log is closed; create a new one")
            if self._thread is None:
                self._start_locked()

    def _start_locked(self) -> None:
        self._thread = threading.Thread(target=self._run, name="modelport-predlog", daemon=True)
        self._thread.start()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every record submitted so far is written or dropped; False on timeout
        (or when the writer is not running)."""
        with self._cond:
            target = self._queued
            if self._thread is None or self._stopped:
                return self._handled >= target
            self._flush_wanted = True
            self._cond.notify_all()
            self._cond.wait_for(lambda: self._handled >= target or self._stopped, timeout)
            return self._handled >= target

    def close(self, timeout: float = 10.0) -> bool:
        """Write what is queued, then stop the writer (idempotent). False when it did not finish
        within ``timeout``; it then goes on in the background. Later submits are dropped."""
        with self._cond:
            self._closing = True
            if self._thread is None and self._queue:
                self._start_locked()
            thread = self._thread
            self._cond.notify_all()
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def __enter__(self) -> PredictionLog:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- callers ----------------------------------------------------------------------------
    def submit(self, record: PredictionRecord) -> bool:
        """Queue ``record`` for writing; True when queued. Never blocks on I/O; a record that is
        sampled out, meets a full queue or a closed log is counted and False is returned."""
        sampled = sample_in(record.request_id, self._rate)
        if sampled and self._early:
            try:
                record = self._prepare(record)
            except Exception as exc:  # a record that cannot be stored must not fail a request
                with self._cond:
                    self._counts["submitted"] += 1
                    self._counts["dropped_error"] += 1
                self._report("a prediction record could not be converted", exc, 1)
                self._dropped({(record.model, record.version): 1})
                return False
        with self._cond:
            counts = self._counts
            counts["submitted"] += 1
            if not sampled:
                counts["sampled_out"] += 1
                return False
            size = len(record.row) if record.row is not None else 0
            if (
                not self._closing
                and len(self._queue) < self._capacity
                and self._queued_bytes + size <= self._capacity_bytes
            ):
                self._queue.append(record)
                self._queued += 1
                before = self._queued_bytes
                self._queued_bytes += size
                if len(self._queue) == self._batch_size or (
                    before < self._batch_bytes <= self._queued_bytes
                ):
                    self._cond.notify_all()
                return True
            counts["dropped_closed" if self._closing else "dropped_full"] += 1
        self._dropped({(record.model, record.version): 1})
        return False

    @property
    def stats(self) -> LogStats:
        with self._cond:
            c = self._counts
            return LogStats(
                submitted=c["submitted"],
                written=c["written"],
                sampled_out=c["sampled_out"],
                dropped_full=c["dropped_full"],
                dropped_error=c["dropped_error"],
                dropped_closed=c["dropped_closed"],
                queue_depth=len(self._queue),
            )

    # -- writer thread ----------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while (batch := self._next_batch()) is not None:
                self._write(batch)
                with self._cond:
                    self._handled += len(batch)
                    self._cond.notify_all()
        finally:
            with self._cond:
                self._stopped = True
                self._cond.notify_all()

    def _next_batch(self) -> list[PredictionRecord] | None:
        """Wait for a full batch, the flush interval, a flush or close; None when done."""
        with self._cond:
            self._cond.wait_for(
                lambda: (
                    self._closing
                    or self._flush_wanted
                    or len(self._queue) >= self._batch_size
                    or self._queued_bytes >= self._batch_bytes
                ),
                self._interval,
            )
            if not self._queue:
                self._flush_wanted = False
                return None if self._closing else []
            batch: list[PredictionRecord] = []
            size = 0
            queue = self._queue
            while queue and len(batch) < self._batch_size:
                row = queue[0].row
                cost = len(row) if row is not None else 0
                if batch and size + cost > self._batch_bytes:
                    break
                batch.append(queue.popleft())
                size += cost
            self._queued_bytes -= size
            if not queue:
                self._flush_wanted = False
            return batch

    def _write(self, batch: list[PredictionRecord]) -> None:
        if not batch:
            return
        failed: Counter[tuple[str, str]] = Counter()
        # A converting sink gets the raw batch in one piece, and so does a sink whose records
        # were converted on submit (every time this thread takes the GIL back from a busy
        # loop costs the loop a hand-over, so it takes it as few times as it can); otherwise
        # the conversion runs here, in small steps that hand the GIL back in between.
        whole = self._converts or self._early
        ready = batch if whole else self._prepared(batch, failed)
        step = max(1, len(ready)) if whole else _WRITE_CHUNK
        written = 0
        for start in range(0, len(ready), step):
            chunk = ready[start : start + step]
            try:
                rejected = self._sink.write(chunk) or ()
                written += len(chunk) - len(rejected)
                failed.update(rejected)
            except Exception as exc:  # the sink's failure is counted, never raised to callers
                failed.update((r.model, r.version) for r in chunk)
                self._report("writing to the prediction log failed", exc, len(chunk))
            if not whole:
                time.sleep(0)
        with self._cond:
            self._counts["written"] += written
            self._counts["dropped_error"] += failed.total()
        if failed:
            self._dropped(failed)

    def _prepare(self, record: PredictionRecord) -> PredictionRecord:
        return prepare_record(
            record,
            redact=self._redact,
            encode=self._encode,
            encode_row=self._encode_row,
            **self._caps,
        )

    def _prepared(
        self, batch: list[PredictionRecord], failed: Counter[tuple[str, str]]
    ) -> list[PredictionRecord]:
        ready: list[PredictionRecord] = []
        for position, record in enumerate(batch, start=1):
            try:
                ready.append(self._prepare(record))
            except Exception as exc:  # a record that cannot be stored must not stop the others
                failed[(record.model, record.version)] += 1
                self._report("a prediction record could not be converted", exc, 1)
            if position % _YIELD_EVERY == 0:
                time.sleep(0)  # hand the GIL back (see _YIELD_EVERY)
        return ready

    def _dropped(self, groups: Mapping[tuple[str, str], int]) -> None:
        if self._on_drop is None:
            return
        for (model, version), n in groups.items():
            try:
                self._on_drop(model, version, n)
            except Exception as exc:  # a broken metrics hook must not break submit or the writer
                self._report("the prediction log's on_drop callback failed", exc, 0)

    def _report(self, what: str, exc: BaseException, records: int) -> None:
        """Log a failure at most once per ``log_interval_s`` (counting the ones not logged)."""
        with self._report_lock:
            now = self._clock.monotonic()
            if self._last_report is not None and now - self._last_report < self._log_interval:
                self._unreported += 1
                return
            self._last_report, unreported, self._unreported = now, self._unreported, 0
        _log.error(
            "%s (%s); %d record(s) dropped; %d further failure(s) since the last report",
            what,
            _describe(exc),
            records,
            unreported,
        )
