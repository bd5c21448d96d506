"""The monitoring commands without a server: drift against a registered version's reference
profile (logged inputs or a sample file), feedback into the prediction log, the alert log, and
alert rules written as a Prometheus file that ``promtool`` accepts."""

from __future__ import annotations

import csv
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import skops.io
import yaml
from sklearn.linear_model import LogisticRegression
from tests.cli.conftest import Cli
from tests.cli.test_monitor_commands import ALERT_HEADER, run

from modelport.core.clock import FakeClock
from modelport.monitoring.alert_events import AlertEvent, alert_fingerprint
from modelport.monitoring.alertlog import AlertLog
from modelport.monitoring.feedback import parse_feedback_csv
from modelport.monitoring.logstore import SqlPredictionStore, default_log_url
from modelport.monitoring.predlog import PredictionRecord

FEATURES = ["a", "b", "c", "d"]


def frame(n: int, seed: int, shift: dict[str, float] | None = None) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = pd.DataFrame(rng.normal(size=(n, len(FEATURES))), columns=FEATURES)
    for name, by in (shift or {}).items():
        x[name] += by
    return x


@pytest.fixture
def registered(cli: Cli, tmp_path: Path) -> Cli:
    """``fraud:1`` (alias champion) registered with training data, so it has a profile; and
    ``fraud:2`` without any."""
    train = frame(1000, seed=1)
    model = tmp_path / "lr.skops"
    skops.io.dump(LogisticRegression().fit(train, (train["a"] > 0).astype(int)), model)
    train_csv = tmp_path / "train.csv"
    train.to_csv(train_csv, index=False)
    args = ("register", str(model), "--name", "fraud", "--yes", "--no-fast-path")
    assert cli(*args, "--training-data", str(train_csv), "--alias", "champion").strip() == "fraud:1"
    assert cli(*args).strip() == "fraud:2"
    return cli


@pytest.fixture
def log(cli: Cli) -> Iterator[SqlPredictionStore]:
    """The embedded prediction log under the CLI's home."""
    cli.home.mkdir(parents=True, exist_ok=True)
    with SqlPredictionStore.open(default_log_url(cli.home)) as store:
        yield store


def records(
    inputs: pd.DataFrame,
    version: str,
    *,
    per_request: int = 10,
    at: datetime | None = None,
    prefix: str = "",
) -> list[PredictionRecord]:
    when = at or datetime.now(UTC)
    out = []
    for start in range(0, len(inputs), per_request):
        batch = inputs.iloc[start : start + per_request].reset_index(drop=True)
        out.append(
            PredictionRecord(
                request_id=f"{prefix}v{version}-{start}",
                endpoint="v2",
                model="fraud",
                version=version,
                time=when,
                latency_s=0.004,
                rows=len(batch),
                ok=True,
                inputs=batch,
                outputs={"label": np.zeros(len(batch), dtype=int)},
            )
        )
    return out


def table(out: str) -> dict[str, list[str]]:
    """FEATURE -> the other cells of a drift table."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("FEATURE"))
    rows = {}
    for line in lines[start + 1 :]:
        cells = line.split()
        if not cells or cells[0] not in FEATURES:
            break
        rows[cells[0]] = cells[1:]
    return rows


# -- drift -------------------------------------------------------------------------------------
def test_drift_of_a_sample_file_flags_the_shifted_feature_only(
    registered: Cli, tmp_path: Path
) -> None:
    shifted = tmp_path / "shifted.csv"
    frame(500, seed=2, shift={"c": 1.0}).to_csv(shifted, index=False)
    same = tmp_path / "same.parquet"
    frame(500, seed=3).to_parquet(same)

    out = registered("drift", "fraud@champion", "--data", str(shifted))
    assert out.splitlines()[0] == (f"fraud:1 against its training profile: 500 rows from {shifted}")
    rows = table(out)
    assert set(rows) == set(FEATURES)
    assert rows["c"][0:2] == ["numeric", "psi"]
    assert rows["c"][-1] == "drift"
    assert float(rows["c"][2]) > 0.2
    assert float(rows["c"][3]) < 0.01
    assert [rows[f][-1] for f in ("a", "b", "d")] == ["ok", "ok", "ok"]
    assert "1 of 4 features drifted" in out
    assert "  c: PSI " in out

    rc, out, err = run(registered, "drift", "fraud:1", "--data", str(shifted), "--fail-on-drift")
    assert rc == 1
    assert "1 of 4 features drifted" in out
    assert "comparing 500 rows with the training profile of fraud:1" in err

    out = registered("drift", "fraud:1", "--data", str(same), "--fail-on-drift")
    assert "0 of 4 features drifted" in out
    assert {cells[-1] for cells in table(out).values()} == {"ok"}

    report = registered.json("drift", "fraud:1", "--data", str(shifted))
    assert (report["model"], report["version"], report["rows"]) == ("fraud", "1", 500)
    assert report["window_s"] is None
    assert report["prediction"] is None
    c = next(f for f in report["features"] if f["feature"] == "c")
    assert c["verdict"] == "drift"
    assert set(c) >= {"feature", "kind", "statistic", "score", "p_value", "verdict", "reason"}
    assert (c["test"], c["n"], c["missing"]) == ("ks", 500, 0)


def test_drift_of_a_small_sample_is_not_called(registered: Cli, tmp_path: Path) -> None:
    small = tmp_path / "small.csv"
    frame(12, seed=4, shift={"a": 0.5}).to_csv(small, index=False)
    out = registered("drift", "fraud:1", "--data", str(small), "--fail-on-drift")
    assert {" ".join(cells[4:]) for cells in table(out).values()} == {"insufficient data"}
    assert "0 of 4 features drifted (4 with insufficient data)" in out
    # the thresholds can be set: 10 values are then enough, and a huge shift is flagged
    frame(12, seed=4, shift={"a": 6.0}).to_csv(small, index=False)
    out = registered("drift", "fraud:1", "--data", str(small), "--min-samples", "10")
    assert table(out)["a"][-1] == "drift"
    bad = registered("drift", "fraud:1", "--data", str(small), "--p-value", "2", code=2)
    assert "0 < p_value < 1" in bad


def test_drift_of_logged_inputs(registered: Cli, log: SqlPredictionStore) -> None:
    log.write(records(frame(600, seed=5, shift={"b": -1.5}), "1"))
    log.write(records(frame(600, seed=6, shift={"d": 3.0}), "2"))  # another version
    old = datetime.now(UTC) - timedelta(hours=3)
    log.write(records(frame(600, seed=7, shift={"a": 3.0}), "1", at=old, prefix="old-"))

    rc, out, err = run(registered, "drift", "fraud@champion")
    assert rc == 0, err
    assert (
        out.splitlines()[0] == "fraud:1 against its training profile: 600 rows from the last 3600s"
    )
    rows = table(out)
    assert rows["b"][-1] == "drift"
    assert [rows[f][-1] for f in ("a", "c", "d")] == ["ok", "ok", "ok"]
    assert "reading up to 10000 inputs of fraud:1 logged in the last 3600s" in err

    out = registered("drift", "fraud:1", "--window", str(4 * 3600))  # the old rows count now
    assert "1200 rows" in out.splitlines()[0]
    assert {f for f, cells in table(out).items() if cells[-1] == "drift"} == {"a", "b"}
    out = registered("drift", "fraud:1", "--window", str(4 * 3600), "--limit", "600")
    assert "600 rows" in out.splitlines()[0]  # the newest rows
    assert {f for f, cells in table(out).items() if cells[-1] == "drift"} == {"b"}
    url = default_log_url(registered.home)
    assert registered.json("drift", "fraud:1", "--log-url", url)["window_s"] == 3600


def test_drift_offline_errors(registered: Cli, tmp_path: Path) -> None:
    err = registered("drift", "fraud:1", code=3)
    assert "no prediction log at" in err
    assert "--log-url" in err
    with SqlPredictionStore.open(default_log_url(registered.home)):
        pass
    err = registered("drift", "fraud:1", code=3)
    assert "no inputs of fraud:1 were logged in the last 3600s" in err
    assert "--data FILE" in err
    err = registered("drift", "fraud:2", code=3)
    assert "fraud:2 has no reference profile" in err
    assert "--training-data" in err
    assert "has no version 9" in registered("drift", "fraud:9", code=3)
    assert "positive integer" in registered("drift", "fraud:x", code=2)
    sample = tmp_path / "s.csv"
    frame(50, seed=1).to_csv(sample, index=False)
    both = ("--data", str(sample), "--window", "60")
    assert "--data replaces" in registered("drift", "fraud:1", *both, code=2)
    assert "--model/--version" in registered("drift", "fraud:1", "--model", "x", code=2)
    empty = tmp_path / "empty.csv"
    empty.write_text("a,b,c,d\n")
    assert "has no rows" in registered("drift", "fraud:1", "--data", str(empty), code=2)
    missing = f"sqlite:///{tmp_path / 'nope.db'}"
    assert "no prediction log at" in registered("drift", "fraud:1", "--log-url", missing, code=3)


# -- feedback ----------------------------------------------------------------------------------
def write_labels(path: Path, rows: list[tuple[str, Any]]) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "label"])
        writer.writerows(rows)
    return path


def test_feedback_into_the_prediction_log(
    cli: Cli, log: SqlPredictionStore, tmp_path: Path
) -> None:
    log.write(records(frame(10, seed=1), "1", per_request=1))  # ids v1-0 ... v1-9, one row each
    labels = write_labels(
        tmp_path / "labels.csv",
        [(f"v1-{i}", i % 2) for i in range(6)] + [("x-1", 1), ("x-2", 0)],
    )
    rejected = tmp_path / "later.csv"
    rc, out, err = run(cli, "feedback", "fraud", "--file", str(labels), "--rejected", str(rejected))
    assert rc == 3
    assert out.splitlines() == [
        "fraud: 6 of 8 labels stored",
        "unknown ids (2): x-1, x-2",
        f"their rows were written to {rejected}",
    ]
    assert "error: 2 of 8 ids have no logged prediction of model 'fraud'" in err
    assert "x-1, x-2" in err
    assert "X-Request-ID" in err
    assert "--allow-unknown" in err
    assert [(c.predictions, c.labeled) for c in log.counts("fraud")] == [(10, 6)]
    assert [i.id for i in parse_feedback_csv(rejected.read_bytes())] == ["x-1", "x-2"]

    more = write_labels(tmp_path / "more.csv", [("v1-9", 1), ("x-3", 1)])
    result = cli.json("feedback", "fraud", "--file", str(more), "--allow-unknown")
    assert result == {"model": "fraud", "labels": 2, "accepted": 1, "unknown_ids": ["x-3"]}
    url = default_log_url(cli.home)
    ok = write_labels(tmp_path / "ok.csv", [("v1-8", 0)])
    assert cli("feedback", "fraud", "--file", str(ok), "--log-url", url).strip() == (
        "fraud: 1 of 1 labels stored"
    )
    assert [c.labeled for c in log.counts("fraud")] == [8]

    many = write_labels(tmp_path / "many.csv", [(f"x-{i}", 1) for i in range(30)])
    err = cli("feedback", "fraud", "--file", str(many), "--chunk-size", "7", code=3)
    assert "x-0, x-1" in err
    assert "x-19 … and 10 more" in err


def test_feedback_offline_errors(cli: Cli, log: SqlPredictionStore, tmp_path: Path) -> None:
    log.write(records(frame(6, seed=1), "1", per_request=3))  # two requests of 3 rows
    scalar = write_labels(tmp_path / "scalar.csv", [("v1-0", 1)])
    err = cli("feedback", "fraud", "--file", str(scalar), code=2)
    assert "is a single label but the request had 3 rows" in err
    rows = write_labels(tmp_path / "rows.csv", [("v1-3", "[1, 0, 1]")])
    assert "1 of 1 labels stored" in cli("feedback", "fraud", "--file", str(rows))
    header = tmp_path / "header.csv"
    header.write_text("request,label\nv1-0,1\n")
    assert "header must be 'id,label'" in cli("feedback", "fraud", "--file", str(header), code=2)
    assert "model name" in cli("feedback", "bad/name", "--file", str(rows), code=2)
    missing = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    err = cli("feedback", "fraud", "--file", str(rows), "--log-url", missing, code=3)
    assert "no prediction log at" in err


# -- alerts ------------------------------------------------------------------------------------
def event(rule: str, status: str, at: datetime, feature: str | None = None) -> AlertEvent:
    kind = "drift" if feature else "error_rate"
    return AlertEvent(
        rule=rule,
        kind=kind,  # type: ignore[arg-type]
        severity="critical" if kind == "error_rate" else "warning",
        status=status,  # type: ignore[arg-type]
        model="fraud",
        version="1",
        feature=feature,
        statistic="psi" if feature else None,
        value=0.12 if kind == "error_rate" else 0.7,
        threshold=0.05 if kind == "error_rate" else 0.2,
        window_s=300,
        starts_at=at,
        ends_at=at + timedelta(minutes=5) if status == "resolved" else None,
        fingerprint=alert_fingerprint(rule, "fraud", "1", feature),
        summary=f"{rule} {status}",
    )


def test_alerts_from_the_alert_log(cli: Cli, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'alerts.db'}"
    t0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    clock = FakeClock(t0)
    with AlertLog(url, clock=clock) as alert_log:
        alert_log.create()
        alert_log.record([event("errors", "firing", t0), event("drift", "firing", t0, "amount")])
        clock.advance(600)
        alert_log.record([event("drift", "resolved", t0, "amount")])

    lines = cli("alerts", "--log-url", url).splitlines()
    assert lines[0].split() == ALERT_HEADER
    assert lines[1].split() == [
        "errors",
        "critical",
        "fraud",
        "1",
        "-",
        "12%",
        "5%",
        "2026-03-01",
        "12:00:00",
    ]
    assert len(lines) == 2

    out = cli("alerts", "list", "--log-url", url, "--history", "--limit", "2")
    history = out.split("history (newest first):\n")[1].splitlines()
    assert [h.split()[2:4] for h in history[1:]] == [["resolved", "drift"], ["firing", "drift"]]
    assert "2026-03-01 12:10:00" in history[1]
    document = cli.json("alerts", "--log-url", url, "--history")
    assert [a["rule"] for a in document["firing"]] == ["errors"]
    assert document["firing"][0]["since"] == "2026-03-01T12:00:00+00:00"
    assert [h["status"] for h in document["history"]] == ["resolved", "firing", "firing"]

    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    AlertLog(empty).create()
    assert cli("alerts", "--log-url", empty).strip() == "no firing alerts"
    missing = f"sqlite:///{tmp_path / 'missing.db'}"
    assert "no alert log at" in cli("alerts", "--log-url", missing, code=3)
    assert not (tmp_path / "missing.db").exists()
    err = cli("alerts", "http://127.0.0.1:1", "--log-url", url, code=2)
    assert "not both" in err


def record_alerts(url: str) -> None:
    t0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    with AlertLog(url) as alert_log:
        alert_log.create()
        alert_log.record([event("errors", "firing", t0)])


def test_alerts_offline_read_the_servers_default_database(cli: Cli) -> None:
    assert "no alert log at" in cli("alerts", "--offline", code=3)
    cli.home.mkdir(parents=True)
    record_alerts(default_log_url(cli.home))  # where `modelport serve` logs them by default
    assert cli("alerts", "--offline").splitlines()[1].split()[0] == "errors"


@pytest.mark.postgres
def test_team_mode_uses_the_registrys_postgresql_database(cli: Cli, pg_url: str) -> None:
    record_alerts(pg_url)
    with SqlPredictionStore.open(pg_url) as store:
        store.write(records(frame(3, seed=1), "1", per_request=1))
    team = ("--registry-uri", pg_url)
    firing = cli.json(*team, "alerts", "--offline")["firing"]
    assert [a["rule"] for a in firing] == ["errors"]
    labels = write_labels(cli.home.parent / "l.csv", [("v1-0", 1), ("v1-1", 0)])
    assert "2 of 2 labels stored" in cli(*team, "feedback", "fraud", "--file", str(labels))


RULES = """\
rules:
  - name: fraud-p95
    kind: p95_latency
    model: fraud
    threshold: 0.25
    window_s: 300
    for_s: 60
    severity: critical
  - name: errors
    kind: error_rate
    threshold: 0.05
    window_s: 300
  - name: amount-drift
    kind: drift
    model: fraud
    version: "3"
    feature: amount
    statistic: ks
    threshold: 0.3
    window_s: 3600
  - name: accuracy.low
    kind: accuracy
    model: fraud
    threshold: 0.9
    window_s: 86400
    min_samples: 100
"""


@pytest.fixture
def rules_file(tmp_path: Path) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    return path


def test_alert_rules_to_prometheus(cli: Cli, rules_file: Path, tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool is not None, "promtool is needed (Debian package prometheus)"
    out_file = tmp_path / "alerts.rules.yml"
    rc, out, err = run(cli, "alerts", "rules", str(rules_file), "--prometheus", "-o", str(out_file))
    assert rc == 0, err
    assert out == ""
    assert f"wrote 4 alerting rules to {out_file}" in err
    check = subprocess.run(
        [promtool, "check", "rules", str(out_file)], capture_output=True, text=True, timeout=60
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS: 4 rules found" in check.stdout + check.stderr
    text = out_file.read_text()
    assert "alert: accuracy_low" in text
    printed = cli("alerts", "rules", str(rules_file), "--prometheus", "--interval", "30")
    assert "interval: 30s" in printed
    assert (
        yaml.safe_load(printed)["groups"][0]["rules"] == yaml.safe_load(text)["groups"][0]["rules"]
    )


def test_alert_rules_are_listed_and_checked(cli: Cli, rules_file: Path, tmp_path: Path) -> None:
    lines = cli("alerts", "rules", str(rules_file)).splitlines()
    assert lines[0].split() == [
        "NAME",
        "KIND",
        "MODEL",
        "VERSION",
        "FEATURE",
        "FIRES",
        "WINDOW",
        "SEVERITY",
    ]
    p95 = ["fraud-p95", "p95_latency", "fraud", "-", "-", ">", "250", "ms", "300s", "critical"]
    assert lines[1].split() == p95
    assert "< 90%" in lines[4]
    assert "> 0.3 (ks)" in lines[3]
    listed = cli.json("alerts", "rules", str(rules_file))
    assert [r["name"] for r in listed] == ["fraud-p95", "errors", "amount-drift", "accuracy.low"]

    bad = tmp_path / "bad.yaml"
    bad.write_text(
        RULES.replace("threshold: 0.05", "threshold: 5").replace("kind: drift", "kind: x")
    )
    err = cli("alerts", "rules", str(bad), "--prometheus", code=2)
    assert "rules[1] (rule 'errors'): a error_rate threshold is a fraction" in err
    assert "rules[2].kind (rule 'amount-drift')" in err
    broken = tmp_path / "broken.yaml"
    broken.write_text("rules: [\n")
    assert "not valid YAML at line" in cli("alerts", "rules", str(broken), code=2)
    assert "goes with --prometheus" in cli("alerts", "rules", str(rules_file), "-o", "x", code=2)
    assert "does not exist" in cli("alerts", "rules", str(tmp_path / "none.yaml"), code=2)
    err = cli("alerts", "rules", str(rules_file), "--prometheus", "--group", "a/b", code=2)
    assert "rule group name" in err
