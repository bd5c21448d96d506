"""The child-process sink writes exactly what the in-process path writes, survives its child
dying, and redacts before anything reaches the disk."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from modelport.core.errors import StoreUnavailableError
from modelport.monitoring.logstore import SqlPredictionStore
from modelport.monitoring.predlog import PredictionLog, PredictionRecord
from modelport.monitoring.predlog_process import ProcessSink

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
NAMES = ("age", "income", "score")


def records() -> list[PredictionRecord]:
    """One of each kind of input the server logs: arrays with names, frames (numeric and
    mixed), mappings of columns, non-finite values, a failed request without outputs."""
    rng = np.random.default_rng(0)
    block = rng.normal(size=(3, 3))
    block[1, 2] = np.nan
    mixed = pd.DataFrame({"age": [30, 41], "city": ["paris", "rome"]})
    inputs: list[Any] = [
        block,
        pd.DataFrame(rng.normal(size=(2, 3)), columns=list(NAMES)),
        mixed,
        {"age": np.array([7, 8]), "income": np.array([1.5, np.inf])},
        np.arange(3, dtype=np.int32).reshape(1, 3),
    ]
    out = []
    for i, value in enumerate(inputs):
        rows = len(value) if not isinstance(value, dict) else 2
        out.append(
            PredictionRecord(
                request_id=f"r{i}",
                endpoint="clf",
                model="clf",
                version="1",
                time=T0 + timedelta(seconds=i),
                latency_s=0.001 * (i + 1),
                rows=rows,
                ok=i != 4,
                inputs=value,
                outputs=None if i == 4 else {"label": np.arange(rows), "p": np.ones((rows, 2))},
                input_names=NAMES if isinstance(value, np.ndarray) else None,
            )
        )
    return out


def write_all(sink: Any, redact: frozenset[str] = frozenset()) -> PredictionLog:
    log = PredictionLog(sink, redact=redact, batch_size=2)
    log.start()
    for item in records():
        assert log.submit(item)
    assert log.flush(timeout=60)
    log.close()
    return log


@pytest.fixture
def urls(tmp_path: Path) -> tuple[str, str]:
    thread_url, process_url = (f"sqlite:///{tmp_path / name}" for name in ("t.db", "p.db"))
    for url in (thread_url, process_url):
        with SqlPredictionStore(url) as store:
            store.create()
    return thread_url, process_url


def test_the_child_writes_what_the_writer_thread_writes(urls: tuple[str, str]) -> None:
    thread_url, process_url = urls
    with SqlPredictionStore(thread_url) as store:
        write_all(store, frozenset({"income"}))
    sink = ProcessSink(process_url, redact={"income"})
    try:
        log = write_all(sink)
    finally:
        sink.close()
    assert (log.stats.written, log.stats.dropped_error) == (5, 0)
    with SqlPredictionStore(thread_url) as a, SqlPredictionStore(process_url) as b:
        pd.testing.assert_frame_equal(a.recent_inputs("clf"), b.recent_inputs("clf"))
        pd.testing.assert_frame_equal(a.recent_outputs("clf"), b.recent_outputs("clf"))
        assert a.counts() == b.counts()
        assert set(b.recent_inputs("clf")["income"].dropna()) == {"[redacted]"}


def test_a_dead_child_is_replaced_before_the_next_batch(urls: tuple[str, str]) -> None:
    _, url = urls
    sink = ProcessSink(url)
    try:
        for item in records()[:3]:
            assert sink.write([item]) == []
            assert sink._proc is not None
            sink._proc.kill()  # whatever ends it, the next batch gets a new child
            sink._proc.join(10)
    finally:
        sink.close()
    with SqlPredictionStore(url) as store:
        assert [c.predictions for c in store.counts()] == [3]


def test_a_batch_the_child_cannot_write_is_reported_without_values(tmp_path: Path) -> None:
    sink = ProcessSink(f"sqlite:///{tmp_path / 'no-schema.db'}")  # nobody created the tables
    try:
        with pytest.raises(StoreUnavailableError) as failed:
            sink.write(records()[:2])
    finally:
        sink.close()
    assert "writing to the prediction log failed" in str(failed.value)
    assert "paris" not in str(failed.value)


def test_records_the_child_cannot_store_are_counted_and_the_rest_written(
    urls: tuple[str, str],
) -> None:
    _, url = urls
    good = records()[0]
    bad = PredictionRecord(**{**_fields(good), "request_id": "bad", "input_names": ("a", "b")})
    sink = ProcessSink(url)
    try:
        log = PredictionLog(sink, batch_size=2)
        log.start()
        log.submit(good)
        log.submit(bad)
        assert log.flush(timeout=60)
        log.close()
    finally:
        sink.close()
    assert (log.stats.written, log.stats.dropped_error) == (1, 1)


def _fields(record: PredictionRecord) -> dict[str, Any]:
    return {name: getattr(record, name) for name in record.__slots__}
