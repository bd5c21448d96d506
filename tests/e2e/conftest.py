"""End-to-end fixtures: ``modelport serve`` as a user runs it, in a subprocess, stopped with
SIGTERM (so its clean-up runs and can be checked)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import httpx
import pandas as pd
import pytest
from tests.serving.slow_model import SlowModel

from modelport.api.registry import Registry
from modelport.core.settings import Settings

BIN = Path(sys.executable).with_name("modelport")
Server = Callable[..., AbstractContextManager[str]]


@pytest.fixture
def slow_home(tmp_path: Path) -> Path:
    """A registry holding ``slow:1``, a Python-class model that sleeps ``delay`` seconds."""
    home = tmp_path / "home"
    with Registry.open(settings=Settings(home=home)) as registry:
        registry.register(SlowModel(), name="slow", input_example=pd.DataFrame({"delay": [0.0]}))
    return home


@pytest.fixture
def server_tmp(tmp_path: Path) -> Path:
    """The server's TMPDIR (where its metrics directory goes), to check it is cleaned up."""
    path = tmp_path / "server-tmp"
    path.mkdir()
    return path


@pytest.fixture
def modelport_server(slow_home: Path, server_tmp: Path, tmp_path: Path) -> Server:
    """``with modelport_server("slow", "--workers", "2") as url:`` — ready when entered; on exit
    SIGTERM, a clean exit (status 0) is required."""

    @contextmanager
    def start(*args: str) -> Iterator[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MODELPORT_")}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        env["TMPDIR"] = str(server_tmp)
        log = tmp_path / "serve.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [str(BIN), "--home", str(slow_home), "serve", *args, "--port", "0"],
                stdout=subprocess.DEVNULL,
                stderr=out,
                env=env,
            )
        try:
            url = _wait_ready(proc, log)
            yield url
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0, log.read_text()[-3000:]
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)

    return start


def _wait_ready(proc: subprocess.Popen[bytes], log: Path) -> str:
    deadline = time.monotonic() + 90
    url = None
    while True:
        assert proc.poll() is None, f"server exited early:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"server never became ready:\n{log.read_text()[-3000:]}"
        if url is None:
            match = re.search(r"http://127\.0\.0\.1:(\d+)", log.read_text())
            url = f"http://127.0.0.1:{match.group(1)}" if match else None
        if url is not None and _ready(url):
            return url
        time.sleep(0.1)


def _ready(url: str, probes: int = 6) -> bool:
    """Ready on several fresh connections in a row (each may reach another worker)."""
    try:
        return all(
            httpx.get(f"{url}/v2/health/ready", timeout=2).status_code == 200 for _ in range(probes)
        )
    except httpx.TransportError:
        return False
