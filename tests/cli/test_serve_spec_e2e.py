"""``modelport serve --spec``: the spec is recorded, its endpoint served and rolled out, in a
real server process."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest
from tests.serving.rollout_models import AlsoZero, Zero

from modelport.api.registry import Registry
from modelport.core.settings import Settings

pytestmark = pytest.mark.e2e

SPEC = """\
endpoint: ep
baseline: ep@champion
candidate: ep:2
strategy: {kind: canary, steps: [50, 100], step_interval: 1s}
analysis: {min_requests: 10, max_p95_ratio: null, max_p95_ms: 1000}
"""


def test_serve_from_a_spec_records_it_and_rolls_it_out(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with Registry.open(settings=Settings(home=home)) as registry:
        example = pd.DataFrame({"x": [0.0, 1.0]})
        registry.register(Zero(), name="ep", input_example=example, alias="champion")
        registry.register(AlsoZero(), name="ep", input_example=example)
    spec = tmp_path / "deploy.yaml"
    spec.write_text(SPEC)
    log = tmp_path / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELPORT_")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])  # the test models' module
    args = [sys.executable, "-m", "modelport", "--home", str(home), "serve", "--spec", str(spec)]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*args, "--port", "0", "--poll-interval", "0.2", "--rollout-interval", "0.2"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        deadline = time.monotonic() + 60
        url = None
        while url is None:
            assert time.monotonic() < deadline, log.read_text()
            assert proc.poll() is None, log.read_text()
            found = re.search(r"on (http://127\.0\.0\.1:\d+)", log.read_text())
            url = found.group(1) if found else None
            time.sleep(0.1)
        body = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": [0.0]}]}
        seen = set()
        with httpx.Client(base_url=url, timeout=5) as client:
            while time.monotonic() < deadline:
                answer = client.post("/v2/models/ep/infer", json=body)
                if answer.status_code == 200:
                    seen.add(answer.json()["model_version"])
                with Registry.open(settings=Settings(home=home)) as registry:
                    record = registry.service.latest_rollout("ep")
                    if record is not None and record.finished_at is not None:
                        break
                time.sleep(0.01)
        assert record is not None
        assert record.phase == "promoted", log.read_text()
        assert seen == {"1", "2"}
        with Registry.open(settings=Settings(home=home)) as registry:
            assert registry.get("ep@champion").number == 2
            assert [d.endpoint for d in registry.deployments()] == ["ep"]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, log.read_text()
