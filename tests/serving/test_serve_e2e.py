"""`modelport serve` as a user runs it: a real uvicorn server in a subprocess, real HTTP."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc.aio
import httpx
import numpy as np
import pandas as pd
import pytest
from tests.serving.slow_model import SlowModel

from modelport.api.registry import Registry
from modelport.core.settings import Settings
from modelport.serving.grpc import SERVICE_NAME, proto

pytestmark = pytest.mark.e2e
BIN = Path(sys.executable).with_name("modelport")


@contextmanager
def running(home: Path, *args: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELPORT_")}
    proc = subprocess.Popen(
        [str(BIN), "--home", str(home), "serve", *args, "--port", "0"],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        assert match, line + (proc.stderr.read() if proc.poll() is not None else "")
        url = f"http://127.0.0.1:{match.group(1)}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/v2/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, "server exited early"
            assert time.monotonic() < deadline, "server never became ready"
            time.sleep(0.1)
        yield proc, url
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        if proc.stderr is not None:
            proc.stderr.close()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    with Registry.open(settings=Settings(home=home)) as registry:
        registry.register(SlowModel(), name="slow", input_example=pd.DataFrame({"delay": [0.0]}))
    return home


def _infer(url: str, delay: float) -> httpx.Response:
    body = {"inputs": [{"name": "delay", "datatype": "FP64", "shape": [1], "data": [delay]}]}
    return httpx.post(f"{url}/v2/models/slow/infer", json=body, timeout=30)


def test_two_workers_answer_and_sigterm_drains_in_flight(home: Path) -> None:
    with running(home, "slow", "--workers", "2", "--grace-period", "10") as (proc, url):
        answers = [_infer(url, 0.0) for _ in range(10)]
        assert {a.status_code for a in answers} == {200}
        assert answers[0].json()["outputs"][0]["data"] == [0.0]
        result: dict[str, httpx.Response] = {}
        slow = threading.Thread(target=lambda: result.setdefault("r", _infer(url, 1.5)))
        slow.start()
        time.sleep(0.5)  # the slow request is in flight
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        slow.join(20)
        assert result["r"].status_code == 200, "in-flight request finished during the drain"
        assert result["r"].json()["outputs"][0]["data"] == [3.0]
        assert proc.wait(15) == 0
        assert time.monotonic() - started < 12
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{url}/v2/health/live", timeout=2)


def test_single_worker_sigterm_exits_cleanly(home: Path) -> None:
    with running(home, "slow", "--grace-period", "5") as (proc, url):
        assert _infer(url, 0.0).status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0


def test_grpc_port_serves_the_v2_grpc_service(home: Path) -> None:
    grpcclient = pytest.importorskip("tritonclient.grpc")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        grpc_port = sock.getsockname()[1]
    with running(home, "slow", "--grpc-port", str(grpc_port)) as (_proc, _url):
        client = grpcclient.InferenceServerClient(f"127.0.0.1:{grpc_port}")
        assert client.is_server_live()
        assert client.is_server_ready()
        assert client.get_model_metadata("slow").name == "slow"
        infer_input = grpcclient.InferInput("delay", [1], "FP64")
        infer_input.set_data_from_numpy(np.array([0.25]))
        result = client.infer("slow", [infer_input])
        assert result.as_numpy("predictions").tolist() == [0.5]
        client.close()


def _batches(url: str) -> tuple[float, float]:
    """``(rows, batches)`` the server's batch-size histogram counted for ``slow`` so far."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    found = {}
    for kind in ("sum", "count"):
        match = re.search(
            rf'^modelport_batch_size_{kind}\{{[^}}]*model="slow"[^}}]*\}} (\S+)$', text, re.M
        )
        assert match, text[:2000]
        found[kind] = float(match.group(1))
    return found["sum"], found["count"]


def test_bursts_over_grpc_share_batches_and_over_rest_are_all_answered(home: Path) -> None:
    """25 bursts of 12 requests to a 1 ms model, sent at once from one event loop (so they are
    in flight together however slowly this test's own process runs). Over gRPC, whose queued
    calls the worker cannot count, they are batched (rows per batch above 1.5). Over REST each
    is answered once; REST bursts batch only ~1.2 rows per batch today (at b53b728 too), which
    is recorded in bench/PROFILING.md as work left, not asserted here."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        grpc_port = sock.getsockname()[1]
    with running(home, "slow", "--grpc-port", str(grpc_port)) as (_proc, url):
        for _ in range(20):  # one at a time: nothing to batch with
            assert _infer(url, 0.001).status_code == 200
        rows, batches = _batches(url)
        assert rows == batches, (rows, batches)  # 20 (+ the smoke request) batches of one row
        body = {"inputs": [{"name": "delay", "datatype": "FP64", "shape": [1], "data": [0.001]}]}

        async def rest() -> None:
            limits = httpx.Limits(max_connections=12)
            async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
                for _ in range(25):
                    burst = [client.post("/v2/models/slow/infer", json=body) for _ in range(12)]
                    answers = await asyncio.gather(*burst)
                    assert {a.status_code for a in answers} == {200}

        async def grpc_calls() -> None:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
                infer = channel.unary_unary(
                    f"/{SERVICE_NAME}/ModelInfer",
                    request_serializer=lambda msg: msg.SerializeToString(),
                    response_deserializer=proto.ModelInferResponse.FromString,
                )
                request = proto.ModelInferRequest(model_name="slow")
                request.inputs.add(name="delay", datatype="FP64", shape=[1])
                request.inputs[0].contents.fp64_contents.append(0.001)
                for _ in range(25):
                    answers = await asyncio.gather(*(infer(request, timeout=30) for _ in range(12)))
                    assert {a.model_name for a in answers} == {"slow"}

        for name, client in (("gRPC", grpc_calls), ("REST", rest)):
            asyncio.run(client())
            before_rows, before_batches = rows, batches
            rows, batches = _batches(url)
            assert rows - before_rows == 12 * 25  # every request answered once
            ratio = (rows - before_rows) / (batches - before_batches)
            if name == "gRPC":
                assert ratio > 1.5, f"{name}: {ratio:.2f} rows per batch"
