"""Load generation with wrk: closed loop, a fixed JSON body, percentiles from a Lua ``done()``.

``wrk --latency`` prints only p50/p75/p90/p99; the script's ``done()`` prints every figure we
report as one JSON line (``BENCH {...}``), read from wrk's own latency histogram (microseconds).
wrk counts a response with status > 399 in ``errors.status``; read/write/connect/timeout errors
are failures too. Every run is bounded: ``-d`` seconds plus a hard subprocess timeout.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "%(content_type)s"
local f = assert(io.open("%(body_path)s", "rb"))
wrk.body = f:read("*a")
f:close()

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests": %%d, "duration_us": %%d, "connect": %%d, "read": %%d, "write": %%d, ' ..
    '"status": %%d, "timeout": %%d, "p50": %%d, "p95": %%d, "p99": %%d, "max": %%d, ' ..
    '"mean": %%f}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max,
    latency.mean))
end
"""


@dataclass(frozen=True)
class LoadResult:
    requests: int
    seconds: float
    rps: float  # successful (2xx/3xx, no socket error) responses per second
    errors: int  # non-2xx statuses + socket errors + timeouts
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def wrk_path() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise RuntimeError("wrk is not installed; run bench/setup.sh")
    return found


def write_script(work: Path, key: str, body: bytes, content_type: str) -> Path:
    body_path = work / "bodies" / f"{key}.body"
    body_path.parent.mkdir(parents=True, exist_ok=True)
    body_path.write_bytes(body)
    script = work / "bodies" / f"{key}.lua"
    script.write_text(_LUA % {"content_type": content_type, "body_path": str(body_path)})
    return script


def run(url: str, script: Path, *, connections: int, seconds: float) -> LoadResult:
    """One closed-loop wrk run (one wrk thread, ``connections`` connections)."""
    cmd = [
        wrk_path(),
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "5s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30)
    line = next((ln for ln in res.stdout.splitlines() if ln.startswith("BENCH ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result (exit {res.returncode}): {res.stderr[-300:]}")
    data = json.loads(line[len("BENCH ") :])
    secs = data["duration_us"] / 1e6
    socket_errors = data["connect"] + data["read"] + data["write"] + data["timeout"]
    errors = data["status"] + socket_errors
    ok = max(0, data["requests"] - data["status"] - data["read"] - data["write"])
    return LoadResult(
        requests=data["requests"],
        seconds=secs,
        rps=ok / secs if secs > 0 else 0.0,
        errors=errors,
        p50_ms=data["p50"] / 1000,
        p95_ms=data["p95"] / 1000,
        p99_ms=data["p99"] / 1000,
        max_ms=data["max"] / 1000,
    )
