"""Unit tests of the monitor's parts: windows shared by worker processes, the leader lock, the
recorder, the status and drift shapes, the alert state across restarts, the configuration."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from pydantic import ValidationError

from modelport.core.clock import FakeClock
from modelport.core.errors import InvalidInputError, PredictionError
from modelport.core.signature import FieldSpec, Signature
from modelport.monitoring.accuracy import AccuracyStats
from modelport.monitoring.alert_rules import AlertRule
from modelport.monitoring.alertlog import AlertLog
from modelport.monitoring.drift import FeatureDrift
from modelport.monitoring.predlog import PredictionRecord
from modelport.serving.config import MonitoringConfig, ServeConfig
from modelport.serving.manager import Served
from modelport.serving.monitor import resolve_log_url
from modelport.serving.monitor_alerts import STATE_FILE, AlertRunner
from modelport.serving.monitor_figures import DriftResult, Figures, observations
from modelport.serving.monitor_observe import PredictionRecorder
from modelport.serving.monitor_report import (
    accuracy_entry,
    drift_summary,
    feature_entry,
    status_document,
)
from modelport.serving.monitor_windows import SharedDirectory, WorkerWindows
from modelport.serving.types import Prediction

START = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def clock() -> FakeClock:
    return FakeClock(START)


def dead_pid() -> int:
    proc = multiprocessing.get_context("spawn").Process(target=int)
    proc.start()
    proc.join(30)
    assert proc.pid is not None
    return proc.pid


# -- windows ---------------------------------------------------------------------------------
def test_requests_leave_the_window_as_time_passes() -> None:
    c = clock()
    windows = WorkerWindows([60, 300], c)
    for i in range(10):
        windows.record(("m", "m", "1"), 0.001 * (i + 1), error=i < 2)
    merged = windows.merged()
    assert merged[60].snapshot(("m", "m", "1")).count == 10
    assert merged[60].snapshot(("m", "m", "1")).errors == 2
    c.advance(120)
    merged = windows.merged()
    assert merged[60].snapshot(("m", "m", "1")).count == 0
    assert merged[300].snapshot(("m", "m", "1")).count == 10


def test_sibling_workers_windows_add_up_and_dead_ones_are_ignored(tmp_path: Path) -> None:
    c = clock()
    mine, sibling, gone = (WorkerWindows([300], c) for _ in range(3))
    for _ in range(3):
        mine.record(("m", "m", "1"), 0.010, error=False)
    for _ in range(5):
        sibling.record(("m", "m", "1"), 0.020, error=True)
    gone.record(("m", "m", "1"), 0.030, error=False)
    dead = dead_pid()
    SharedDirectory(tmp_path, pid=os.getppid()).write_windows(sibling.export())  # alive
    SharedDirectory(tmp_path, pid=dead).write_windows(gone.export())
    (tmp_path / "windows-junk.json").write_text("{}")
    me = SharedDirectory(tmp_path)
    me.write_windows(mine.export())
    others = me.read_windows()
    assert len(others) == 1  # not mine, not the dead worker's
    assert not (tmp_path / f"windows-{dead}.json").exists()
    stats = mine.merged(others)[300].snapshot(("m", "m", "1"))
    assert (stats.count, stats.errors) == (8, 5)
    assert stats.p95 == pytest.approx(0.020, rel=0.02)
    me.close()
    assert not (tmp_path / f"windows-{os.getpid()}.json").exists()


def test_an_export_that_does_not_fit_is_skipped(caplog: pytest.LogCaptureFixture) -> None:
    c = clock()
    windows = WorkerWindows([300], c)
    windows.record(("m", "m", "1"), 0.01, error=False)
    other = WorkerWindows([300], c).export()
    other["300"]["slice_s"] = 7.0
    with caplog.at_level(logging.WARNING):
        merged = windows.merged([other, {"300": {"v": 99}}, {}])
    assert merged[300].snapshot(("m", "m", "1")).count == 1
    assert "ignoring another worker's window figures" in caplog.text


def test_one_worker_leads_until_it_goes(tmp_path: Path) -> None:
    first, second = SharedDirectory(tmp_path), SharedDirectory(tmp_path)
    assert first.try_lead()
    assert first.leading
    assert not second.try_lead()
    assert not second.leading
    first.close()
    assert second.try_lead()
    second.close()


def test_the_evaluation_file_round_trips(tmp_path: Path) -> None:
    shared = SharedDirectory(tmp_path / "shared")
    assert shared.read_evaluation() is None
    shared.write_evaluation({"versions": [], "alerts": [{"rule": "r"}]})
    assert shared.read_evaluation() == {"versions": [], "alerts": [{"rule": "r"}]}
    (tmp_path / "shared" / "evaluation.json").write_text("{broken")
    assert shared.read_evaluation() is None


# -- the recorder -----------------------------------------------------------------------------
class _Log:
    def __init__(self, fail: bool = False) -> None:
        self.records: list[PredictionRecord] = []
        self.fail = fail

    def submit(self, record: PredictionRecord) -> bool:
        if self.fail:
            raise RuntimeError("log is broken")
        self.records.append(record)
        return True


def _served(signature: Signature | None) -> Served:
    from modelport.core.digest import Manifest
    from modelport.core.model import Lineage, ModelVersion

    version = ModelVersion(
        name="m", number=2, digest="d", format="python", manifest=Manifest(()), signature=signature,
        input_example=None, metrics={}, params={}, tags={}, description="", lineage=Lineage(),
        environment=None, profile=None, trusted_types=(), runtime_config={}, datasets=(),
        status="ready", created_by="t", created_at=START,
    )  # fmt: skip
    return Served("m", 2, "ready", version=version)


def test_the_recorder_counts_5xx_as_errors_and_names_array_inputs() -> None:
    c = clock()
    columns = Signature("columns", (FieldSpec("a", "float64"), FieldSpec("b", "float64")))
    tensor = Signature("tensors", (FieldSpec("x", "float32", (-1, 3)),))
    log = _Log()
    recorder = PredictionRecorder(WorkerWindows([60], c), c)
    recorder.log = log  # type: ignore[assignment]
    table, matrix = _served(columns), _served(tensor)
    arr = np.zeros((2, 2))
    done = Prediction("m", 2, {"y": np.zeros(2)}, 2)
    recorder.observed(table, arr, done, 0.01, request_id="a", ok=True)
    recorder.observed(table, arr, None, 0.02, request_id="b", ok=False, error=PredictionError("x"))
    recorder.observed(
        table, arr, None, 0.03, request_id="c", ok=False, error=InvalidInputError("bad")
    )
    recorder.observed(matrix, np.zeros((2, 3)), None, 0.04, request_id="d", ok=False)
    stats = recorder.windows.merged()[60].snapshot(("m", "m", "2"))
    assert (stats.count, stats.errors) == (4, 2)  # the 400 is a request, not an error
    first, second, _third, fourth = log.records
    assert first.input_names == ("a", "b")
    assert first.outputs == {"y": done.outputs["y"]}
    assert (second.ok, second.outputs, second.rows) == (False, None, 2)
    assert set(fourth.inputs) == {"x"}  # one tensor: one column of rows
    assert all(r.endpoint == "m" and r.version == "2" for r in log.records)
    assert first.time == START


def test_the_recorder_never_raises(caplog: pytest.LogCaptureFixture) -> None:
    c = clock()
    recorder = PredictionRecorder(WorkerWindows([60], c), c)
    recorder.log = _Log(fail=True)  # type: ignore[assignment]
    served = _served(None)
    with caplog.at_level(logging.ERROR):
        for _ in range(3):
            recorder.observed(served, np.zeros(1), None, 0.01, request_id="a", ok=True)
    assert caplog.text.count("recording a prediction failed") == 1
    recorder.observed(served, np.zeros(1), None, -1.0, request_id="b", ok=True)  # bad latency


def test_on_a_loop_the_record_is_submitted_once_the_caller_yields(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The windows count at once; the record (which the log converts as it is submitted)
    goes in a loop callback, after the answer; a failing log is logged, never raised."""
    c = clock()
    recorder = PredictionRecorder(WorkerWindows([60], c), c)
    log = _Log()
    recorder.log = log  # type: ignore[assignment]
    served = _served(None)

    async def main() -> tuple[int, int, int]:
        recorder.observed(served, np.zeros(1), None, 0.01, request_id="a", ok=True)
        counted = recorder.windows.merged()[60].snapshot(("m", "m", "2")).count
        before = len(log.records)
        await asyncio.sleep(0)
        return counted, before, len(log.records)

    assert asyncio.run(main()) == (1, 0, 1)
    assert log.records[0].request_id == "a"
    assert log.records[0].time == START  # the time of the answer, not of the callback

    recorder.log = _Log(fail=True)  # type: ignore[assignment]

    async def failing() -> None:
        for _ in range(2):
            recorder.observed(served, np.zeros(1), None, 0.01, request_id="b", ok=True)
        await asyncio.sleep(0)

    with caplog.at_level(logging.ERROR):
        asyncio.run(failing())
    assert caplog.text.count("recording a prediction failed") == 1


# -- shapes -----------------------------------------------------------------------------------
def _drift(name: str, verdict: Any, **scores: float) -> FeatureDrift:
    return FeatureDrift(name=name, kind="numeric", n=40, verdict=verdict, reason="r", **scores)


def test_drift_entries_and_summary() -> None:
    shifted = _drift("a", "drift", psi=0.9, ks_stat=0.5, p_value=1e-9)
    calm = _drift("b", "ok", psi=0.01, ks_stat=0.05, p_value=0.8)
    thin = _drift("c", "insufficient_data")
    assert feature_entry(shifted) == {
        "feature": "a",
        "kind": "numeric",
        "statistic": "psi",
        "score": 0.9,
        "p_value": 1e-9,
        "verdict": "drift",
        "reason": "r",
    }
    assert feature_entry(thin)["verdict"] == "insufficient data"
    assert drift_summary([calm, thin], None, 60) == {
        "verdict": "ok",
        "drifted": [],
        "window_s": 60,
    }
    assert drift_summary([thin], None, 60)["verdict"] == "insufficient data"
    assert drift_summary([calm], shifted, 60)["drifted"] == ["prediction"]
    assert drift_summary([shifted, calm], None, 60)["drifted"] == ["a"]


def test_accuracy_entry() -> None:
    assert accuracy_entry(AccuracyStats("classification", 0), 60) is None
    regression = AccuracyStats("regression", 4, mae=0.5, rmse=0.7)
    assert accuracy_entry(regression, 60) == {
        "value": None,
        "labeled": 4,
        "window_s": 60,
        "task": "regression",
        "mae": 0.5,
        "rmse": 0.7,
    }


def test_status_shares_traffic_and_lists_retired_versions() -> None:
    c = clock()
    windows = WorkerWindows([300], c)
    for _ in range(3):
        windows.record(("m", "m", "1"), 0.01, error=True)
    windows.record(("m", "m", "2"), 0.01, error=False)
    window = windows.merged()[300]
    evaluation = {
        "versions": [{"model": "m", "version": "2", "accuracy": {"value": 1.0}, "drift": None}],
        "alerts": [{"rule": "r"}],
    }
    states = {("m", "2"): "ready", ("n", "1"): "loading"}
    doc = status_document(c.now(), 300, False, window, states, evaluation)
    assert doc["generated_at"] == START.isoformat()
    assert doc["ready"] is False
    assert doc["alerts"] == [{"rule": "r"}]
    m1, m2, n1 = doc["versions"]
    assert (m1["version"], m1["state"], m1["traffic_share"], m1["error_rate"]) == (
        "1",
        "retired",
        0.75,
        1.0,
    )
    assert (m2["state"], m2["traffic_share"], m2["accuracy"]) == ("ready", 0.25, {"value": 1.0})
    assert (n1["model"], n1["requests"], n1["p95_ms"], n1["traffic_share"]) == ("n", 0, None, 0.0)
    assert m1["p95_ms"] == pytest.approx(10.0, rel=0.02)


def test_observations_hold_every_figure_of_a_version() -> None:
    c = clock()
    windows = WorkerWindows([60], c)
    for i in range(4):
        windows.record(("m", "m", "1"), 0.1, error=i == 0)
    drift = DriftResult(40, (_drift("a", "drift", psi=0.9, ks_stat=0.5),), None)
    figures = Figures(
        drift={("m", "1", 60): drift},
        accuracy={("m", "1", 60): AccuracyStats("classification", 10, accuracy=0.7)},
    )
    (obs,) = observations(windows.merged(), [("m", "1")], figures, [60])
    assert (obs.requests, obs.errors, obs.labeled, obs.accuracy) == (4, 1, 10, 0.7)
    assert obs.p95_s == pytest.approx(0.1, rel=0.02)
    assert obs.drift == {("a", "psi"): 0.9, ("a", "ks"): 0.5}


# -- alert state across restarts --------------------------------------------------------------
def _obs(errors: int) -> Any:
    from modelport.monitoring.alerts import Observation

    return Observation(model="m", version="1", window_s=60, requests=10, errors=errors)


def test_alert_state_survives_a_restart(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    c = clock()
    rule = AlertRule(name="errs", kind="error_rate", threshold=0.2, window_s=60, min_samples=5)
    with AlertLog("sqlite://", clock=c) as alert_log:
        alert_log.create()
        state = tmp_path / STATE_FILE
        first = AlertRunner([rule], c, alert_log, None, state)
        assert [e.status for e in first.run([_obs(5)])] == ["firing"]
        assert state.is_file()
        c.advance(30)
        again = AlertRunner([rule], c, alert_log, None, state)  # a restarted worker
        assert again.run([_obs(5)]) == []
        assert [a.rule for a in again.firing()] == ["errs"]
        assert [e.status for e in again.run([_obs(0)])] == ["resolved"]
        assert [r.event.status for r in alert_log.history()] == ["resolved", "firing"]
        state.write_text("{not json")
        with caplog.at_level(logging.ERROR):
            fresh = AlertRunner([rule], c, alert_log, None, state)
            assert fresh.run([_obs(0)]) == []
        assert "is not valid" in caplog.text
        assert orjson.loads(state.read_bytes())["instances"] == []


# -- configuration ----------------------------------------------------------------------------
def test_monitoring_configuration() -> None:
    config = ServeConfig(refs=("m",))
    assert config.monitoring.enabled
    assert config.monitoring.prediction_log
    assert config.monitoring.window_s == 300
    assert config.monitoring.evaluate_interval_s == 15
    with pytest.raises(ValidationError, match="webhook_allowed_hosts"):
        MonitoringConfig(webhook_url="http://hooks.example.com/x")
    with pytest.raises(ValidationError):
        MonitoringConfig(log_sample_rate=1.5)
    with pytest.raises(ValidationError):
        MonitoringConfig(unknown=1)  # type: ignore[call-arg]
    assert ServeConfig.model_validate(
        {"refs": ["m"], "monitoring": {"redact": ["ssn"], "window_s": 60}}
    ).monitoring.redact == ("ssn",)


def test_log_url_defaults(tmp_path: Path) -> None:
    plain = MonitoringConfig()
    assert resolve_log_url(plain, tmp_path, None) == f"sqlite:///{tmp_path / 'monitoring.db'}"
    sqlite_registry = f"sqlite:///{tmp_path}/registry.db"
    assert resolve_log_url(plain, tmp_path, sqlite_registry).endswith("monitoring.db")
    team = "postgresql+psycopg://u@db/modelport"
    assert resolve_log_url(plain, tmp_path, team) == team
    chosen = MonitoringConfig(log_url="sqlite:////var/log/m.db")
    assert resolve_log_url(chosen, tmp_path, team) == "sqlite:////var/log/m.db"
