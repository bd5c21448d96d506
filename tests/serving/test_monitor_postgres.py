"""Team mode: with the registry on PostgreSQL, the server's prediction log and alert log default
to the same database (the real PostgreSQL server)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import create_engine, inspect, text
from starlette.testclient import TestClient
from tests.serving.conftest import wait_ready
from tests.serving.monitor_fixtures import flaky_body
from tests.serving.monitor_models import FlakyModel

from modelport.api.registry import Registry
from modelport.api.serve import MONITORING_STATE_DIR, build_app
from modelport.core.settings import Settings
from modelport.monitoring.alertlog import ALERT_EVENTS_TABLE
from modelport.serving.app import server_monitor
from modelport.serving.config import MonitoringConfig, ServeConfig
from modelport.serving.monitor_alerts import STATE_FILE

pytestmark = pytest.mark.postgres


@pytest.fixture
def restored_logging() -> Iterator[None]:
    """``build_app`` sets up the process' logging, as a worker's edge does: undo it after."""
    root, ours = logging.getLogger(), logging.getLogger("modelport")
    handlers, levels = list(root.handlers), (root.level, ours.level)
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(levels[0])
        ours.setLevel(levels[1])


@pytest.mark.usefixtures("restored_logging")
def test_the_log_goes_to_the_registrys_postgresql_database(pg_url: str, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", registry_uri=pg_url)
    example = pd.DataFrame({"x": [0.5], "delay": [0.0], "fail": [0]})
    with Registry.open(settings=settings) as registry:
        registry.register(FlakyModel(), name="flaky", input_example=example)
    config = ServeConfig(refs=("flaky",), monitoring=MonitoringConfig(evaluate_interval_s=3600))
    app = build_app(settings, config)
    monitor = server_monitor(app)
    assert monitor is not None
    assert monitor.log_url == pg_url
    with TestClient(app) as client:
        wait_ready(client)
        ids = [
            client.post("/v2/models/flaky/infer", json=flaky_body(x)).headers["x-request-id"]
            for x in (1.0, -1.0, 2.0)
        ]
        answer = client.post(
            "/v2/models/flaky/feedback", json=[{"id": i, "label": 1} for i in [*ids, "zz"]]
        )
        assert answer.json() == {"accepted": 3, "unknown_ids": ["zz"]}
        portal = client.portal
        assert portal is not None
        portal.call(monitor.evaluate)
        version = client.get("/v2/monitoring/status").json()["versions"][0]
        assert version["accuracy"]["value"] == pytest.approx(2 / 3)
        assert client.get("/v2/monitoring/alerts").json() == {"firing": [], "history": []}
    engine = create_engine(pg_url)
    try:
        with engine.connect() as conn:
            assert ALERT_EVENTS_TABLE in inspect(conn).get_table_names()
            count = conn.execute(text("SELECT count(*) FROM mp_predictions")).scalar_one()
        assert count == 3
    finally:
        engine.dispose()
    assert not (tmp_path / "home" / "monitoring.db").exists()
    assert (tmp_path / "home" / MONITORING_STATE_DIR / STATE_FILE).is_file()
