"""The prediction log: records to columns, redaction, sampling and the bounded background writer.

No test sleeps to wait for the writer: sinks signal with events, and ``flush``/``close`` wait on
the log's own condition.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest

from modelport.core.clock import FakeClock
from modelport.core.errors import InvalidInputError, StoreUnavailableError
from modelport.monitoring.predlog import (
    REDACTED,
    LogStats,
    PredictionLog,
    PredictionRecord,
    PredictionSink,
    check_sample_rate,
    prepare_record,
    sample_in,
)
from modelport.monitoring.predlog_columns import Columns, to_columns
from modelport.monitoring.predlog_encode import EncodedColumns

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
WAIT_S = 10.0  # generous bound for events that must happen; never reached when things work


def record(
    rid: str = "r-1", *, model: str = "clf", version: str = "1", **kw: Any
) -> PredictionRecord:
    fields: dict[str, Any] = {
        "endpoint": "fraud",
        "time": T0,
        "latency_s": 0.01,
        "rows": 1,
        "ok": True,
        "inputs": {"x": np.array([1.0])},
        "outputs": {"label": np.array([1])},
    }
    fields.update(kw)
    return PredictionRecord(request_id=rid, model=model, version=version, **fields)


class RecordingSink:
    def __init__(self) -> None:
        self.batches: list[list[PredictionRecord]] = []
        self.threads: set[str] = set()

    def write(self, records: Sequence[PredictionRecord]) -> None:
        self.threads.add(threading.current_thread().name)
        self.batches.append(list(records))

    @property
    def records(self) -> list[PredictionRecord]:
        return [r for batch in self.batches for r in batch]


class BlockingSink(RecordingSink):
    """Blocks inside ``write`` until released; ``entered`` is set once a write is waiting."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def write(self, records: Sequence[PredictionRecord]) -> None:
        self.entered.set()
        assert self.release.wait(WAIT_S), "test never released the sink"
        super().write(records)


class FlakySink(RecordingSink):
    """Fails while ``failing`` is set, with a message holding a payload value."""

    def __init__(self) -> None:
        super().__init__()
        self.failing = True

    def write(self, records: Sequence[PredictionRecord]) -> None:
        if self.failing:
            raise RuntimeError("INSERT failed for value 987.654321 (secret)")
        super().write(records)


@pytest.fixture
def drops() -> list[tuple[str, str, int]]:
    return []


def make_log(sink: PredictionSink, drops: list[tuple[str, str, int]], **kw: Any) -> PredictionLog:
    kw.setdefault("flush_interval_s", 3600.0)  # writes happen on full batches, flush or close
    return PredictionLog(sink, on_drop=lambda m, v, n: drops.append((m, v, n)), **kw)


@pytest.fixture
def closing() -> Iterator[list[PredictionLog]]:
    logs: list[PredictionLog] = []
    yield logs
    for log in logs:
        log.close(timeout=WAIT_S)


def accounted(stats: LogStats) -> int:
    return (
        stats.written
        + stats.sampled_out
        + stats.dropped_full
        + stats.dropped_error
        + stats.dropped_closed
        + stats.queue_depth
    )


# -- columns ------------------------------------------------------------------------------------
def test_dataframe_columns_become_json_values() -> None:
    frame = pd.DataFrame(
        {
            "amount": [1.5, np.nan, np.inf],
            "count": pd.array([1, None, 3], dtype="Int64"),
            "city": ["Oslo", None, "Lima"],
            "when": pd.to_datetime(["2026-01-01 00:00:00", None, "2026-01-02 03:04:05"]),
            "flag": [True, False, True],
        }
    )
    columns, truncated = to_columns(frame)
    assert not truncated
    assert columns == {
        "amount": [1.5, None, None],
        "count": [1, None, 3],
        "city": ["Oslo", None, "Lima"],
        "when": ["2026-01-01T00:00:00", None, "2026-01-02T03:04:05"],
        "flag": [True, False, True],
    }
    assert {type(v) for v in columns["count"] if v is not None} == {int}


def test_a_one_dtype_frame_converts_like_its_columns() -> None:
    """The one-block fast path gives exactly what the per-column path gives."""
    floats = pd.DataFrame({"a": [1.5, np.nan], "b": [np.inf, -2.0]})
    assert to_columns(floats) == ({"a": [1.5, None], "b": [None, -2.0]}, False)
    ints = pd.DataFrame({"a": [1, 2], "b": [3, 2**62]})
    columns, _ = to_columns(ints, redact=("B",))
    assert columns == {"a": [1, 2], "b": ["[redacted]", "[redacted]"]}
    assert type(columns["a"][0]) is int
    flags = pd.DataFrame({"x": [True, False]})
    assert to_columns(flags) == ({"x": [True, False]}, False)
    assert to_columns(pd.DataFrame(np.zeros((5, 2)), columns=["p", "q"]), max_rows=3) == (
        {"p": [0.0] * 3, "q": [0.0] * 3},
        True,
    )


def test_array_with_names_mapping_and_numpy_scalars_become_python_values() -> None:
    columns, _ = to_columns(np.array([[1, 2], [3, 4]], dtype=np.int32), ("a", "b"))
    assert columns == {"a": [1, 3], "b": [2, 4]}
    assert type(columns["a"][0]) is int
    columns, _ = to_columns(np.array([[0.5, np.nan]]))
    assert columns == {"input_0": [0.5], "input_1": [None]}
    mixed = {
        "p": np.float32(0.25),
        "obj": np.array([np.int64(3), "s", None, {"k": np.float64(1.0)}], dtype=object),
        "dt": np.array(["2026-01-01", "NaT"], dtype="datetime64[s]"),
        "td": np.array([1500, "NaT"], dtype="timedelta64[ms]"),
        "raw": [b"bytes", 2**70],
    }
    columns, _ = to_columns(mixed)
    assert columns == {
        "p": [0.25],
        "obj": [3, "s", None, {"k": 1.0}],
        "dt": ["2026-01-01T00:00:00", None],
        "td": [1.5, None],
        "raw": ["bytes", str(2**70)],
    }
    with pytest.raises(ValueError, match="3 input names given for an array of 2 columns"):
        to_columns(np.zeros((1, 2)), ("a", "b", "c"))


def test_rows_are_capped_and_tensors_limited_by_values() -> None:
    columns, truncated = to_columns({"x": np.arange(10)}, max_rows=4)
    assert (columns["x"], truncated) == ([0, 1, 2, 3], True)
    images = np.zeros((5, 2, 3))  # 6 values per row
    columns, truncated = to_columns({"img": images, "y": np.arange(5)}, max_values=13)
    assert len(columns["img"]) == 2
    assert columns["img"][0] == [[0.0] * 3] * 2
    assert columns["y"] == [0, 1, 2, 3, 4]
    assert truncated
    columns, truncated = to_columns({"img": images, "y": [1]}, max_values=5)
    assert "img" not in columns  # one row alone is over the cap
    assert truncated


def test_redaction_replaces_columns_and_object_keys_case_insensitively() -> None:
    frame = pd.DataFrame({"SSN": ["123-45-6789", "987-65-4321"], "age": [30, 40]})
    columns, _ = to_columns(frame, redact={"ssn"})
    assert columns == {"SSN": [REDACTED, REDACTED], "age": [30, 40]}
    nested = {"payload": [{"Email": "a@b.c", "n": 1}]}
    columns, _ = to_columns(nested, redact={"email"})
    assert columns == {"payload": [{"Email": REDACTED, "n": 1}]}


def test_prepare_record_converts_redacts_and_is_idempotent() -> None:
    raw = record(
        inputs=np.array([[1.0, 2.0]] * 3),
        input_names=("income", "age"),
        outputs={"label": np.array([1, 0, 1]), "secret": np.array([0.9, 0.8, 0.7])},
        rows=3,
    )
    ready = prepare_record(raw, redact={"income", "secret"}, max_rows=2)
    assert isinstance(ready.inputs, Columns)
    assert isinstance(ready.outputs, Columns)
    assert ready.inputs == {"income": [REDACTED] * 2, "age": [2.0, 2.0]}
    assert ready.outputs == {"label": [1, 0], "secret": [REDACTED] * 2}
    assert ready.truncated
    assert ready.input_names is None
    assert ready.rows == 3
    assert prepare_record(ready) == ready


def test_prepare_record_refuses_what_cannot_be_stored() -> None:
    with pytest.raises(ValueError, match="request_id must be a string of at most 256"):
        prepare_record(record("r" * 257))
    with pytest.raises(ValueError, match="timezone-aware"):
        prepare_record(record(time=datetime(2026, 1, 1)))


# -- sampling -----------------------------------------------------------------------------------
def test_sampling_is_deterministic_by_request_id() -> None:
    ids = [f"req-{i}" for i in range(10_000)]
    first = [sample_in(i, 0.3) for i in ids]
    assert first == [sample_in(i, 0.3) for i in ids]
    assert 0.28 <= sum(first) / len(ids) <= 0.32
    low = {i for i in ids if sample_in(i, 0.1)}
    high = {i for i in ids if sample_in(i, 0.5)}
    assert low < high  # raising the rate only adds ids
    assert all(sample_in(i, 1.0) for i in ids[:100])
    assert not any(sample_in(i, 0.0) for i in ids[:100])


@pytest.mark.parametrize("rate", [-0.1, 1.5, float("nan"), "0.5", True, None])
def test_sample_rate_is_validated(rate: Any) -> None:
    with pytest.raises(InvalidInputError, match="sample rate must be a number from 0 to 1"):
        check_sample_rate(rate)
    with pytest.raises(InvalidInputError, match="sample rate"):
        PredictionLog(RecordingSink(), sample_rate=rate)


@pytest.mark.parametrize(
    ("option", "value"),
    [("capacity", 0), ("batch_size", -1), ("capacity", 1.5), ("flush_interval_s", 0.0)],
)
def test_writer_options_are_validated(option: str, value: Any) -> None:
    with pytest.raises(InvalidInputError, match=f"prediction log {option} must be a positive"):
        PredictionLog(RecordingSink(), **{option: value})


def test_sampled_out_records_are_counted_and_never_queued(
    drops: list[tuple[str, str, int]], closing: list[PredictionLog]
) -> None:
    sink = RecordingSink()
    log = make_log(sink, drops, sample_rate=0.5)
    closing.append(log)
    log.start()
    ids = [f"id-{i}" for i in range(200)]
    accepted = [log.submit(record(i)) for i in ids]
    assert log.flush(WAIT_S)
    assert accepted == [sample_in(i, 0.5) for i in ids]
    stats = log.stats
    assert stats.sampled_out == accepted.count(False) > 0
    assert stats.written == accepted.count(True) == len(sink.records)
    assert drops == []  # sampling is not a loss


# -- the writer ---------------------------------------------------------------------------------
def test_conversion_happens_in_the_writer_thread() -> None:
    seen: list[str] = []

    class Spy(Mapping[str, Any]):
        def __getitem__(self, key: str) -> Any:
            return np.array([1])

        def __iter__(self) -> Iterator[str]:
            seen.append(threading.current_thread().name)
            return iter(["x"])

        def __len__(self) -> int:
            return 1

    sink = RecordingSink()
    with PredictionLog(sink) as log:
        assert log.submit(record(inputs=Spy()))
        assert seen == []  # submit did not touch the data
        assert log.flush(WAIT_S)
    assert seen == ["modelport-predlog"]
    assert sink.threads == {"modelport-predlog"}
    assert sink.records[0].inputs == {"x": [1]}


def test_full_queue_drops_and_counts_while_submit_never_waits_for_the_sink(
    drops: list[tuple[str, str, int]], closing: list[PredictionLog]
) -> None:
    sink = BlockingSink()
    log = make_log(sink, drops, capacity=5, batch_size=1)
    closing.append(log)
    log.start()
    assert log.submit(record("first"))
    assert sink.entered.wait(WAIT_S)  # the writer is now stuck inside the sink
    results: list[bool] = []
    submitter = threading.Thread(
        target=lambda: results.extend(log.submit(record(f"r{i}", version="2")) for i in range(8))
    )
    submitter.start()
    submitter.join(WAIT_S)
    assert not submitter.is_alive(), "submit waited for the blocked sink"
    assert not sink.release.is_set()
    assert results == [True] * 5 + [False] * 3
    stats = log.stats
    assert (stats.submitted, stats.queue_depth, stats.dropped_full) == (9, 5, 3)
    assert drops == [("clf", "2", 1)] * 3
    assert not log.flush(timeout=0.05)  # cannot finish while the sink is blocked
    sink.release.set()
    assert log.flush(WAIT_S)
    stats = log.stats
    assert (stats.written, stats.queue_depth) == (6, 0)
    assert accounted(stats) == stats.submitted


def test_sink_failure_never_reaches_the_caller_and_is_counted(
    drops: list[tuple[str, str, int]],
    closing: list[PredictionLog],
    caplog: pytest.LogCaptureFixture,
) -> None:
    sink = FlakySink()
    clock = FakeClock()
    log = make_log(sink, drops, batch_size=2, clock=clock, log_interval_s=60.0)
    closing.append(log)
    log.start()
    marker = 4242.123456
    with caplog.at_level(logging.ERROR, logger="modelport.monitoring.predlog"):
        assert all(log.submit(record(f"a{i}", inputs={"x": np.array([marker])})) for i in range(3))
        assert log.submit(record("b", version="2"))
        assert log.flush(WAIT_S)
    stats = log.stats
    assert (stats.written, stats.dropped_error, stats.queue_depth) == (0, 4, 0)
    assert sorted(drops) == [("clf", "1", 1), ("clf", "1", 2), ("clf", "2", 1)]
    assert len(caplog.records) == 1  # rate-limited: two failed batches, one report
    message = caplog.records[0].getMessage()
    assert "writing to the prediction log failed (RuntimeError)" in message
    assert "987.654321" not in message
    assert str(marker) not in message
    assert caplog.records[0].exc_info is None

    sink.failing = False  # the sink recovers: the writer kept going
    assert log.submit(record("c"))
    assert log.flush(WAIT_S)
    assert [r.request_id for r in sink.records] == ["c"]
    assert log.stats.written == 1


def test_failure_reports_resume_after_the_interval(closing: list[PredictionLog]) -> None:
    sink = FlakySink()
    clock = FakeClock()
    messages: list[str] = []

    class Capture(logging.Handler):
        def emit(self, rec: logging.LogRecord) -> None:
            messages.append(rec.getMessage())

    handler = Capture(logging.ERROR)
    logger = logging.getLogger("modelport.monitoring.predlog")
    logger.addHandler(handler)
    try:
        log = PredictionLog(sink, clock=clock, log_interval_s=60.0, flush_interval_s=3600.0)
        closing.append(log)
        log.start()
        for i in range(3):
            log.submit(record(f"x{i}"))
            assert log.flush(WAIT_S)
        clock.advance(60.0)
        log.submit(record("y"))
        assert log.flush(WAIT_S)
    finally:
        logger.removeHandler(handler)
    assert len(messages) == 2
    assert "2 further failure(s) since the last report" in messages[1]


def test_modelport_errors_are_logged_with_their_message(
    closing: list[PredictionLog], caplog: pytest.LogCaptureFixture
) -> None:
    class DownSink:
        def write(self, records: Sequence[PredictionRecord]) -> None:
            raise StoreUnavailableError("cannot use the prediction log database at sqlite://")

    log = PredictionLog(DownSink(), flush_interval_s=3600.0)
    closing.append(log)
    log.start()
    with caplog.at_level(logging.ERROR, logger="modelport.monitoring.predlog"):
        log.submit(record())
        assert log.flush(WAIT_S)
    assert "StoreUnavailableError: cannot use the prediction log database" in caplog.text


def test_a_record_that_cannot_be_converted_is_dropped_alone(
    drops: list[tuple[str, str, int]], closing: list[PredictionLog]
) -> None:
    sink = RecordingSink()
    log = make_log(sink, drops, batch_size=10)
    closing.append(log)
    log.start()
    log.submit(record("good-1"))
    log.submit(record("bad", inputs=np.zeros((1, 2)), input_names=("only-one",)))
    log.submit(record("good-2"))
    assert log.flush(WAIT_S)
    assert [r.request_id for r in sink.records] == ["good-1", "good-2"]
    assert (log.stats.written, log.stats.dropped_error) == (2, 1)
    assert drops == [("clf", "1", 1)]


def test_batches_respect_the_batch_size(closing: list[PredictionLog]) -> None:
    sink = RecordingSink()
    log = PredictionLog(sink, batch_size=3, flush_interval_s=3600.0)
    closing.append(log)
    for i in range(7):
        assert log.submit(record(f"r{i}"))  # queued before the writer starts
    assert log.stats.queue_depth == 7
    log.start()
    assert log.flush(WAIT_S)
    assert [len(b) for b in sink.batches] == [3, 3, 1]
    assert [r.request_id for r in sink.records] == [f"r{i}" for i in range(7)]


def test_the_flush_interval_writes_a_partial_batch(closing: list[PredictionLog]) -> None:
    written = threading.Event()

    class SignallingSink(RecordingSink):
        def write(self, records: Sequence[PredictionRecord]) -> None:
            super().write(records)
            written.set()

    sink = SignallingSink()
    log = PredictionLog(sink, batch_size=100, flush_interval_s=0.01)
    closing.append(log)
    log.start()
    log.submit(record())
    assert written.wait(WAIT_S)  # no flush call: the interval alone wrote it
    assert len(sink.records) == 1


def test_close_drains_then_stops_and_is_idempotent(
    drops: list[tuple[str, str, int]],
) -> None:
    sink = RecordingSink()
    log = make_log(sink, drops, batch_size=1000)
    log.start()
    for i in range(5):
        log.submit(record(f"r{i}"))
    assert log.close(WAIT_S)
    assert len(sink.records) == 5
    assert log.close(WAIT_S)
    assert not log.submit(record("late"))
    stats = log.stats
    assert (stats.written, stats.dropped_closed, stats.submitted) == (5, 1, 6)
    assert drops == [("clf", "1", 1)]
    with pytest.raises(RuntimeError, match="closed"):
        log.start()


def test_close_without_start_still_writes_what_was_queued() -> None:
    sink = RecordingSink()
    log = PredictionLog(sink)
    log.submit(record())
    assert log.close(WAIT_S)
    assert len(sink.records) == 1
    assert PredictionLog(RecordingSink()).close()  # nothing queued, nothing started


def test_flush_on_a_log_that_is_not_running() -> None:
    log = PredictionLog(RecordingSink())
    assert log.flush(0.01)  # nothing submitted
    log.submit(record())
    assert not log.flush(0.01)  # queued, but no writer yet
    log.close(WAIT_S)


def test_a_failing_drop_callback_does_not_break_submit(closing: list[PredictionLog]) -> None:
    def broken(model: str, version: str, n: int) -> None:
        raise KeyError("metrics backend gone")

    log = PredictionLog(RecordingSink(), capacity=1, on_drop=broken, flush_interval_s=3600.0)
    closing.append(log)
    assert log.submit(record("a"))
    assert not log.submit(record("b"))  # full: dropped, the callback fails, submit does not
    assert log.stats.dropped_full == 1


def test_times_stay_aware_and_latest_record_wins_in_order(closing: list[PredictionLog]) -> None:
    sink = RecordingSink()
    log = PredictionLog(sink, flush_interval_s=3600.0)
    closing.append(log)
    log.start()
    for i in range(3):
        log.submit(record(f"r{i}", time=T0 + timedelta(seconds=i)))
    assert log.flush(WAIT_S)
    assert [r.time for r in sink.records] == [T0 + timedelta(seconds=i) for i in range(3)]


@pytest.mark.parametrize(
    "block",
    [
        np.arange(12, dtype=np.float64).reshape(4, 3) / 7,
        np.arange(12, dtype=np.int32).reshape(4, 3) - 5,
        np.array([[1.0, np.nan, 2.0], [np.inf, 0.5, -1.0]]),  # non-finite: value by value
        np.array([[2**63, 1, 2]], dtype=np.uint64),  # past int64: the general rules decide
    ],
)
def test_a_numeric_block_converts_like_its_columns_one_by_one(block: np.ndarray) -> None:
    names = ("a", "b", "c")
    by_column = {name: block[:, j] for j, name in enumerate(names)}
    for caps in ({}, {"max_rows": 2}, {"redact": {"B"}}):
        fast = to_columns(block, names, **caps)  # type: ignore[arg-type]
        general = to_columns(by_column, **caps)  # type: ignore[arg-type]
        assert fast == general
        assert orjson.dumps(fast[0]) == orjson.dumps(general[0])


# -- converting on submit -----------------------------------------------------------------------
class EncodedSink(RecordingSink):
    stores_encoded = True


def test_convert_on_submit_converts_in_the_caller_and_writes_whole_batches() -> None:
    sink = EncodedSink()
    drops: list[tuple[str, str, int]] = []
    log = PredictionLog(
        sink,
        convert_on_submit=True,
        redact={"secret"},
        batch_size=4,
        on_drop=lambda m, v, n: drops.append((m, v, n)),
    )
    with log:
        for i in range(10):
            inputs = {"x": np.array([float(i)]), "secret": np.array([1234.5])}
            assert log.submit(record(f"r{i}", inputs=inputs))
        assert not log.submit(record("r" * 257))  # cannot be stored: counted, never raised
        assert log.flush(WAIT_S)
    stats = log.stats
    assert (stats.submitted, stats.written, stats.dropped_error) == (11, 10, 1)
    assert drops == [("clf", "1", 1)]
    written = sink.records
    assert [r.request_id for r in written] == [f"r{i}" for i in range(10)]
    assert all(isinstance(r.inputs, EncodedColumns) for r in written)
    assert orjson.loads(written[3].inputs.text) == {"x": [3.0], "secret": [REDACTED]}
    assert orjson.loads(written[3].outputs.text) == {"label": [1]}
    # converted records are written in one piece per batch taken off the queue
    assert len(sink.batches) <= 3


def test_convert_on_submit_without_an_encoding_sink_gives_columns() -> None:
    sink = RecordingSink()
    with PredictionLog(sink, convert_on_submit=True) as log:
        assert log.submit(record("r1"))
        assert log.flush(WAIT_S)
    [written] = sink.records
    assert isinstance(written.inputs, Columns)
    assert written.inputs == {"x": [1.0]}


class RowSink(EncodedSink):
    """Makes a 1,000-character row per record, as the SQL store's encode_row would."""

    def encode_row(self, record: PredictionRecord) -> str:
        return record.request_id.ljust(1000, ".")


def test_batches_and_the_queue_are_bounded_by_the_size_of_their_rows() -> None:
    sink = RowSink()
    with PredictionLog(sink, convert_on_submit=True, batch_size=100, batch_bytes=2_500) as log:
        for i in range(9):
            assert log.submit(record(f"r{i}"))
        assert log.flush(WAIT_S)
    sizes = [len(b) for b in sink.batches if b]
    assert sizes
    assert max(sizes) <= 2
    assert [r.request_id for r in sink.records] == [f"r{i}" for i in range(9)]
    assert all(r.row is not None and r.row.startswith(r.request_id) for r in sink.records)

    class Blocked(BlockingSink):
        stores_encoded = True

        def encode_row(self, record: PredictionRecord) -> str:
            return "x" * 1000

    blocked = Blocked()
    log = PredictionLog(
        blocked, convert_on_submit=True, batch_size=1, batch_bytes=1_000, capacity_bytes=3_000
    )
    with log:
        assert log.submit(record("first"))
        assert blocked.entered.wait(WAIT_S)  # the writer holds "first"; the queue is empty
        accepted = [log.submit(record(f"q{i}")) for i in range(5)]
        blocked.release.set()
        assert log.flush(WAIT_S)
    assert accepted == [True, True, True, False, False]  # 3,000 characters fit, no more
    assert log.stats.dropped_full == 2
