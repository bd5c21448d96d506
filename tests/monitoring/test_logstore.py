"""The SQL prediction log on real SQLite and PostgreSQL: records, feedback, the join, drift data."""

from __future__ import annotations

import math
import struct
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import create_engine, func, select, text

from modelport.core.clock import FakeClock
from modelport.core.errors import (
    InvalidInputError,
    NotFoundError,
    StoreError,
    StoreUnavailableError,
)
from modelport.monitoring.accuracy import LabeledPrediction, wilson_interval
from modelport.monitoring.feedback import FeedbackItem, parse_feedback_csv
from modelport.monitoring.logstore import (
    FeedbackResult,
    SqlPredictionStore,
    default_log_url,
)
from modelport.monitoring.logstore_schema import predictions, schema_info
from modelport.monitoring.predlog import PredictionLog, PredictionRecord, prepare_record

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)  # on a minute boundary: windows start here
NOW = T0 + timedelta(hours=1)
WAIT_S = 10.0


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'monitoring.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def store(db_url: str) -> Iterator[SqlPredictionStore]:
    with SqlPredictionStore.open(db_url, clock=FakeClock(NOW)) as opened:
        yield opened


def record(
    rid: str,
    *,
    version: str = "1",
    model: str = "clf",
    at: datetime = T0,
    outputs: dict[str, Any] | None = None,
    inputs: Any = None,
    rows: int = 1,
    ok: bool = True,
) -> PredictionRecord:
    return PredictionRecord(
        request_id=rid,
        endpoint="fraud",
        model=model,
        version=version,
        time=at,
        latency_s=0.005,
        rows=rows,
        ok=ok,
        inputs=inputs if inputs is not None else {"x": np.arange(rows, dtype=float)},
        outputs=outputs,
    )


def label_of(value: Any, rows: int = 1) -> dict[str, Any]:
    return {"label": np.array([value] * rows)}


# -- schema -------------------------------------------------------------------------------------
def test_create_is_idempotent_and_records_the_schema_version(
    store: SqlPredictionStore, db_url: str
) -> None:
    store.create()
    SqlPredictionStore.open(db_url).close()
    engine = create_engine(db_url)
    with engine.connect() as conn:
        assert conn.execute(select(schema_info.c.id, schema_info.c.version)).all() == [(1, 1)]
    engine.dispose()


def test_a_newer_schema_is_refused(store: SqlPredictionStore, db_url: str) -> None:
    engine = create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(schema_info.update().values(version=99))
    engine.dispose()
    with pytest.raises(StoreError, match=r"schema version 99, newer than .*upgrade modelport"):
        store.create()


def create_at_once(url: str, n: int = 4) -> list[SqlPredictionStore]:
    """``n`` stores, each with its own engine, creating the schema at the same moment."""
    stores = [SqlPredictionStore(url) for _ in range(n)]
    barrier = threading.Barrier(n, timeout=WAIT_S)
    errors: list[BaseException] = []

    def create(s: SqlPredictionStore) -> None:
        try:
            barrier.wait()
            s.create()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=create, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    return stores


@pytest.mark.postgres
def test_stores_creating_the_schema_at_once_on_postgres(pg_url: str) -> None:
    stores = create_at_once(pg_url)
    stores[0].write([record("r1", outputs=label_of(1))])
    assert stores[1].counts()[0].predictions == 1
    for s in stores:
        s.close()


def test_stores_creating_a_new_sqlite_file_at_once(tmp_path: Path) -> None:
    for attempt in range(10):  # the race (WAL switch on a new file) is not met every time
        url = default_log_url(tmp_path / str(attempt))
        (tmp_path / str(attempt)).mkdir()
        stores = create_at_once(url)
        stores[0].write([record("r1", outputs=label_of(1))])
        assert stores[-1].counts()[0].predictions == 1
        for s in stores:
            s.close()


def test_default_url_is_a_file_apart_from_the_registry(tmp_path: Path) -> None:
    url = default_log_url(tmp_path)
    assert url == f"sqlite:///{tmp_path.resolve()}/monitoring.db"
    with SqlPredictionStore.open(url) as s:
        assert s.url == url
    assert (tmp_path / "monitoring.db").exists()
    assert not (tmp_path / "registry.db").exists()


def test_bad_urls_and_unreachable_databases() -> None:
    with pytest.raises(InvalidInputError, match="unsupported database driver"):
        SqlPredictionStore("mysql://u@h/db")
    with pytest.raises(InvalidInputError, match="not a database URL"):
        SqlPredictionStore("not a url")
    down = SqlPredictionStore("postgresql+psycopg://ann:s3cret-pw@127.0.0.1:1/nope")
    with pytest.raises(StoreUnavailableError, match="cannot use the prediction log") as info:
        down.create()
    assert "s3cret-pw" not in str(info.value)
    assert "***" in str(info.value)
    down.close()


def test_writing_before_create_fails_cleanly(tmp_path: Path) -> None:
    with SqlPredictionStore(default_log_url(tmp_path)) as s:
        with pytest.raises(StoreUnavailableError, match="no such table") as info:
            s.write([record("r1", outputs={"label": np.array(["payload-marker"])})])
        assert "payload-marker" not in str(info.value)


def test_a_given_engine_stays_open_after_close(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'shared.db'}")
    with SqlPredictionStore.open(engine) as s:
        s.write([record("r1", outputs=label_of(1))])
    with engine.connect() as conn:  # still usable: the store did not dispose it
        assert conn.execute(select(func.count()).select_from(predictions)).scalar() == 1
    engine.dispose()


# -- predictions --------------------------------------------------------------------------------
def test_write_counts_and_a_repeat_replaces_the_row(store: SqlPredictionStore) -> None:
    store.write([record(f"r{i}", outputs=label_of(i % 2)) for i in range(300)])
    store.write([record("r0", outputs=label_of(7)), record("r0", version="2", outputs=label_of(1))])
    store.write([])
    [v1, v2] = store.counts()
    assert (v1.model, v1.version, v1.predictions, v1.labeled) == ("clf", "1", 300, 0)
    assert (v2.version, v2.predictions, v2.first_at, v2.last_at) == ("2", 1, T0, T0)
    assert v1.first_at.tzinfo is UTC
    store.add_feedback("clf", [FeedbackItem("r0", 7)])
    labeled = store.labeled("clf", version="1")
    assert [(r.prediction, r.label) for r in labeled] == [(7, 7)]
    assert store.counts("nobody") == []


def test_a_naive_time_is_refused_without_echoing_values(store: SqlPredictionStore) -> None:
    naive = PredictionRecord("r", "e", "clf", "1", datetime(2026, 1, 1), 0.1, 1, True)
    with pytest.raises(InvalidInputError, match="record 0 of the batch has a naive time"):
        store.write([naive])


# -- feedback -----------------------------------------------------------------------------------
def test_unknown_ids_are_reported_and_not_stored(store: SqlPredictionStore) -> None:
    store.write([record("known", outputs=label_of(1)), record("other", model="m2")])
    result = store.add_feedback(
        "clf", [FeedbackItem("known", 1), FeedbackItem("ghost", 0), FeedbackItem("other", 1)]
    )
    assert result == FeedbackResult(accepted=1, unknown_ids=("ghost", "other"))
    assert store.counts("clf")[0].labeled == 1
    assert store.counts("m2")[0].labeled == 0  # another model's id is unknown for this one
    later = store.add_feedback("clf", [FeedbackItem("ghost", 0)])
    assert later.unknown_ids == ("ghost",)


def test_a_later_label_replaces_the_earlier_one(store: SqlPredictionStore) -> None:
    store.write([record("r1", outputs=label_of("cat"))])
    store.add_feedback("clf", [FeedbackItem("r1", "dog")])
    assert [r.label for r in store.labeled("clf")] == ["dog"]
    result = store.add_feedback("clf", [FeedbackItem("r1", "bird"), FeedbackItem("r1", "cat")])
    assert result == FeedbackResult(accepted=1, unknown_ids=())
    assert [(r.prediction, r.label) for r in store.labeled("clf")] == [("cat", "cat")]


def test_list_labels_join_row_by_row(store: SqlPredictionStore) -> None:
    outputs = {"label": np.array([1, 0, 1]), "probability": np.array([0.9, 0.2, 0.6])}
    store.write([record("batch", rows=3, outputs=outputs), record("single", outputs=label_of(0))])
    store.add_feedback("clf", [FeedbackItem("batch", (1, 1, 1)), FeedbackItem("single", 0)])
    labeled = store.labeled("clf")
    assert [(r.prediction, r.label) for r in labeled] == [(1, 1), (0, 1), (1, 1), (0, 0)]
    assert all(isinstance(r, LabeledPrediction) and r.predicted_at == T0 for r in labeled)
    report = store.accuracy("clf", window_s=60)
    assert (report.overall.count, report.overall.correct) == (4, 3)


def test_labels_that_do_not_fit_the_request_are_refused_all_or_nothing(
    store: SqlPredictionStore,
) -> None:
    store.write(
        [record("batch", rows=3, outputs=label_of(1, 3)), record("one", outputs=label_of(1))]
    )
    with pytest.raises(InvalidInputError, match="'batch' of model 'clf' has 2 labels but the req"):
        store.add_feedback("clf", [FeedbackItem("one", 1), FeedbackItem("batch", (1, 0))])
    with pytest.raises(InvalidInputError, match="is a single label but the request had 3 rows"):
        store.add_feedback("clf", [FeedbackItem("batch", 1)])
    with pytest.raises(InvalidInputError, match="has 2 labels but the request had 1 row"):
        store.add_feedback("clf", [FeedbackItem("one", (1, 1))])
    assert store.labeled("clf") == []  # "one" was valid but nothing of the call was stored


def test_feedback_for_many_ids_in_one_call(store: SqlPredictionStore) -> None:
    store.write([record(f"r{i}", outputs=label_of(i % 2)) for i in range(1200)])
    items = [FeedbackItem(f"r{i}", i % 2) for i in range(1200)]
    items.append(FeedbackItem("missing", 0))
    result = store.add_feedback("clf", items)
    assert (result.accepted, result.unknown_ids) == (1200, ("missing",))
    assert store.accuracy("clf", 3600).overall.accuracy == 1.0


def test_csv_feedback_through_the_store(store: SqlPredictionStore) -> None:
    store.write([record("a", outputs=label_of(2.5)), record("b", rows=2, outputs=label_of(1, 2))])
    items = parse_feedback_csv('id,label\na,2.0\nb,"[1, 0]"\nc,1\n')
    assert store.add_feedback("clf", items) == FeedbackResult(2, ("c",))


def test_failed_requests_are_known_but_have_nothing_to_join(store: SqlPredictionStore) -> None:
    store.write([record("failed", ok=False, outputs=None)])
    assert store.add_feedback("clf", [FeedbackItem("failed", 1)]).accepted == 1
    assert store.labeled("clf") == []
    assert store.counts()[0].labeled == 1


# -- the join and accuracy ----------------------------------------------------------------------
def test_classification_accuracy_per_version_with_known_values(store: SqlPredictionStore) -> None:
    truth = [i % 3 == 0 for i in range(20)]
    records, items = [], []
    for i, actual in enumerate(truth):
        v1_guess = actual if i < 16 else not actual  # v1: 16 of 20 right
        v2_guess = actual if i < 10 else not actual  # v2 (shadow): 10 of 20 right
        records.append(record(f"r{i}", outputs=label_of(int(v1_guess)), at=T0))
        records.append(record(f"r{i}", version="2", outputs=label_of(int(v2_guess)), at=T0))
        items.append(FeedbackItem(f"r{i}", "1" if actual else "0"))
    store.write(records)
    assert store.add_feedback("clf", items).accepted == 20  # each id labels both versions
    report = store.accuracy("clf", window_s=60)
    assert report.overall.task == "classification"
    v1, v2 = report.by_version["1"], report.by_version["2"]
    assert (v1.count, v1.correct, v1.accuracy) == (20, 16, 0.8)
    assert (v2.count, v2.correct, v2.accuracy) == (20, 10, 0.5)
    assert (v1.accuracy_low, v1.accuracy_high) == wilson_interval(16, 20)
    assert (report.overall.count, report.overall.correct) == (40, 26)
    only_v2 = store.accuracy("clf", window_s=60, version="2")
    assert list(only_v2.by_version) == ["2"]


def test_regression_mae_and_rmse_through_the_join(store: SqlPredictionStore) -> None:
    predicted, actual = [2.5, 1.0, 6.0, 4.25], [1.5, 3.0, 3.0, 4.25]  # errors 1, -2, 3, 0
    store.write(
        [record(f"r{i}", outputs={"predictions": np.array([p])}) for i, p in enumerate(predicted)]
    )
    store.add_feedback("clf", [FeedbackItem(f"r{i}", y) for i, y in enumerate(actual)])
    report = store.accuracy("clf", window_s=60)
    assert report.overall.task == "regression"
    assert report.overall.count == 4
    assert report.overall.mae == pytest.approx(1.5)
    assert report.overall.rmse == pytest.approx(math.sqrt(14 / 4))
    assert report.by_version["1"].mae == pytest.approx(1.5)


def test_the_prediction_comes_from_the_named_preferred_or_first_output(
    store: SqlPredictionStore,
) -> None:
    store.write(
        [
            record("a", outputs={"probability": np.array([0.7]), "label": np.array(["x"])}),
            record("b", outputs={"output_label": np.array(["o"]), "predict": np.array(["p"])}),
            record("c", outputs={"score": np.array([0.1]), "other": np.array([0.2])}),
        ]
    )
    store.add_feedback("clf", [FeedbackItem(i, "x") for i in "abc"])
    assert [r.prediction for r in store.labeled("clf")] == ["x", "p", 0.1]
    assert [r.prediction for r in store.labeled("clf", output="probability")] == [0.7]
    with pytest.raises(NotFoundError, match="output 'nope' is not among the logged outputs"):
        store.labeled("clf", output="nope")


def test_time_windows_filter_and_group(store: SqlPredictionStore) -> None:
    offsets = [0, 30, 59, 60, 90, 200]
    right = [True, False, True, True, True, False]
    store.write(
        [record(f"r{s}", outputs=label_of(1), at=T0 + timedelta(seconds=s)) for s in offsets]
    )
    store.add_feedback(
        "clf", [FeedbackItem(f"r{s}", 1 if ok else 0) for s, ok in zip(offsets, right, strict=True)]
    )
    window = store.labeled(
        "clf", since=T0 + timedelta(seconds=30), until=T0 + timedelta(seconds=90)
    )
    assert [r.predicted_at for r in window] == [T0 + timedelta(seconds=s) for s in (30, 59, 60)]
    report = store.accuracy("clf", window_s=60)
    assert [(w.start, w.stats.count, w.stats.correct) for w in report.windows] == [
        (T0, 3, 2),
        (T0 + timedelta(seconds=60), 2, 2),
        (T0 + timedelta(seconds=180), 1, 0),
    ]
    later = store.accuracy("clf", window_s=60, since=T0 + timedelta(seconds=60))
    assert [w.start for w in later.windows] == [T0 + timedelta(seconds=s) for s in (60, 180)]
    with pytest.raises(InvalidInputError, match="since must be a timezone-aware datetime"):
        store.labeled("clf", since=datetime(2026, 3, 1))
    with pytest.raises(InvalidInputError, match="window_s must be a positive"):
        store.accuracy("clf", window_s=0)


def test_a_truncated_request_joins_the_rows_it_kept(store: SqlPredictionStore) -> None:
    raw = record("big", rows=5, outputs={"label": np.array([1, 1, 1, 1, 1])})
    store.write([prepare_record(raw, max_rows=3)])
    store.add_feedback("clf", [FeedbackItem("big", (1, 1, 1, 1, 1))])
    assert len(store.labeled("clf")) == 3


# -- data for drift -----------------------------------------------------------------------------
def test_recent_inputs_and_outputs_as_frames(store: SqlPredictionStore) -> None:
    store.write(
        [
            record("old", at=T0, inputs=pd.DataFrame({"a": [1.0, 2.0], "b": ["x", "y"]}), rows=2),
            record("mid", at=T0 + timedelta(seconds=1), inputs={"a": np.array([3.0])}),
            record(
                "new",
                at=T0 + timedelta(seconds=2),
                inputs={"a": np.array([4.0, 5.0]), "c": np.array([True, False])},
                rows=2,
                outputs={"label": np.array([0, 1])},
            ),
            record("v2", version="2", at=T0 + timedelta(seconds=3), inputs={"a": np.array([9.0])}),
        ]
    )
    frame = store.recent_inputs("clf", version="1")
    assert list(frame.columns) == ["a", "b", "c"]
    assert frame["a"].tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert frame["b"].tolist()[:2] == ["x", "y"]
    assert frame["b"].isna().tolist()[2:] == [True] * 3
    newest = store.recent_inputs("clf", version="1", limit=3)
    assert newest["a"].tolist() == [3.0, 4.0, 5.0]
    assert store.recent_inputs("clf", since=T0 + timedelta(seconds=2))["a"].tolist() == [4, 5, 9]
    assert store.recent_inputs("clf", until=T0 + timedelta(seconds=1))["a"].tolist() == [1, 2]
    outputs = store.recent_outputs("clf")
    assert outputs["label"].tolist() == [0, 1]
    assert store.recent_inputs("nobody").empty
    with pytest.raises(InvalidInputError, match="limit must be a whole number"):
        store.recent_inputs("clf", limit=0)


def test_prune_deletes_old_predictions_and_their_feedback(store: SqlPredictionStore) -> None:
    store.write([record(f"r{i}", outputs=label_of(1), at=T0 + timedelta(days=i)) for i in range(4)])
    store.add_feedback("clf", [FeedbackItem(f"r{i}", 1) for i in range(4)])
    assert store.prune(T0 + timedelta(days=2)) == 2
    [counts] = store.counts()
    assert (counts.predictions, counts.labeled, counts.first_at) == (2, 2, T0 + timedelta(days=2))
    assert store.add_feedback("clf", [FeedbackItem("r0", 1)]).unknown_ids == ("r0",)
    store.write([record("r0", outputs=label_of(1))])  # logged again: the old label is gone
    assert len(store.labeled("clf")) == 2
    with pytest.raises(InvalidInputError, match="older_than must be a timezone-aware"):
        store.prune(datetime(2026, 1, 1))


# -- through the writer -------------------------------------------------------------------------
@pytest.mark.parametrize("on_submit", [False, True], ids=["writer converts", "submit converts"])
def test_the_writer_fills_the_store(store: SqlPredictionStore, on_submit: bool) -> None:
    """Converted in the writer thread or on submit (the rows then made by the store's
    ``encode_row``), the same records are stored the same way."""
    drops: list[tuple[str, str, int]] = []
    log = PredictionLog(
        store, batch_size=50, on_drop=lambda *a: drops.append(a), convert_on_submit=on_submit
    )
    with log:
        for i in range(120):
            inputs = {"x": np.array([float(i), np.nan]), "s": np.array(["a", 'q"\\'])}
            log.submit(
                record(
                    f"r{i}",
                    outputs=label_of(i % 2, rows=2),
                    at=T0 + timedelta(seconds=i),
                    inputs=inputs,
                    rows=2,
                )
            )
        assert log.flush(WAIT_S)
        assert log.stats.written == 120
    assert drops == []
    [counts] = store.counts()
    assert (counts.predictions, counts.first_at, counts.last_at) == (
        120,
        T0,
        T0 + timedelta(seconds=119),
    )
    frame = store.recent_inputs("clf", limit=4)
    assert frame["x"].tolist()[::2] == [118.0, 119.0]
    assert frame["x"].isna().tolist()[1::2] == [True, True]
    assert frame["s"].tolist() == ["a", 'q"\\'] * 2
    assert store.recent_outputs("clf", limit=2)["label"].tolist() == [1, 1]


def test_redacted_values_never_reach_the_database_file(tmp_path: Path) -> None:
    url = default_log_url(tmp_path)
    secret_text = "SSN-987-65-4321-QZX"
    secret_float = 314159.2718281828
    secret_output = 0.8675309123
    visible = "visible-marker-77Q"
    store = SqlPredictionStore.open(url)
    with PredictionLog(store, redact={"ssn", "income", "risk"}) as log:
        for i in range(3):
            log.submit(
                record(
                    f"r{i}",
                    inputs=pd.DataFrame(
                        {"SSN": [secret_text], "income": [secret_float], "city": [visible]}
                    ),
                    outputs={"label": np.array([1]), "risk": np.array([secret_output])},
                )
            )
        assert log.flush(WAIT_S)
        assert log.stats.written == 3
    frame = store.recent_inputs("clf")
    assert frame["SSN"].tolist() == ["[redacted]"] * 3
    assert frame["income"].tolist() == ["[redacted]"] * 3
    store.close()

    files = sorted(tmp_path.glob("monitoring.db*"))
    data = b"".join(p.read_bytes() for p in files)
    assert visible.encode() in data  # the check can see stored values
    for value in (secret_float, secret_output):
        for needle in (repr(value).encode(), struct.pack("<d", value), struct.pack(">d", value)):
            assert needle not in data
    for needle in (secret_text.encode(), secret_text.encode("utf-16-le")):
        assert needle not in data


def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    url = default_log_url(tmp_path)
    with SqlPredictionStore.open(url) as s:
        s.write([record("r1", outputs=label_of(1))])
        engine = create_engine(url)
        with engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        engine.dispose()


def test_a_batch_round_trips_awkward_text_and_a_repeat_within_it(
    store: SqlPredictionStore,
) -> None:
    """Rows travel to the database as one JSON parameter (logstore_batch): quotes,
    backslashes, control characters and non-ASCII text arrive as they were sent, and a key
    repeated inside one batch keeps its last row."""
    text = 'quote " back \\ slash\nnew line \t tab é 中文 🙂 \\u0000 literal'
    store.write(
        [
            record("dup", inputs={"s": np.array(["first"])}, outputs=label_of(0)),
            record('id "with" quotes é', inputs={"s": np.array([text])}, outputs=label_of(1)),
            record("dup", inputs={"s": np.array(["second"])}, outputs=label_of(1)),
        ]
    )
    frame = store.recent_inputs("clf")
    assert sorted(frame["s"].tolist()) == sorted([text, "second"])
    [counts] = store.counts()
    assert counts.predictions == 2
    accepted = store.add_feedback("clf", [FeedbackItem('id "with" quotes é', 1)])
    assert accepted.accepted == 1
    assert [(r.prediction, r.label) for r in store.labeled("clf")] == [(1, 1)]
