"""Running one server configuration: start, first correct answer, correctness checks, wrk runs,
CPU and memory from /proc, stop. Pure bookkeeping; what to run is decided in ``serving.py``.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import loadgen
import orjson
import procs
from protocols import Expected, Protocol


@dataclass(frozen=True)
class Scenario:
    model: str
    protocol: Protocol
    connections: int
    rows: int

    @property
    def key(self) -> str:
        return f"{self.model}/{self.protocol.key}/c{self.connections}/r{self.rows}"


@dataclass
class Config:
    key: str
    label: str
    group: str  # raw | modelport | peer | startup
    make: Callable[[int], procs.Server]
    scenarios: list[Scenario]
    probe: Scenario  # its first correct answer is the time to first answer
    ready_timeout_s: float = 90.0
    settle_answers: int = 20  # consecutive correct answers (fresh connections) before loading
    skip_reason: str | None = None


@dataclass
class Measurement:
    round: int
    config: str
    scenario: str
    model: str
    protocol: str
    connections: int
    rows: int
    ok: bool
    reason: str = ""
    rps: float | None = None
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    errors: int | None = None
    requests: int | None = None
    cpu_ms_per_req: float | None = None
    max_abs_diff: float | None = None


@dataclass
class ServerRecord:
    round: int
    config: str
    ok: bool
    reason: str = ""
    ttfa_s: float | None = None
    rss_idle_mb: float | None = None
    pss_idle_mb: float | None = None
    rss_load_mb: float | None = None
    pss_load_mb: float | None = None
    processes: int | None = None
    load_before: float | None = None  # 1-minute load average when the server started
    src: str = ""  # fingerprint of the project's source when the server started
    measurements: list[Measurement] = field(default_factory=list)


def post(port: int, path: str, body: bytes, timeout: float = 5.0) -> tuple[int, Any]:
    """One request on a fresh connection: (status, parsed JSON or raw text)."""
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=body,
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, orjson.loads(raw)
    except orjson.JSONDecodeError:
        return status, raw.decode(errors="replace")[:200]


class Runner:
    def __init__(
        self,
        work: Path,
        logs: Path,
        rows: dict[int, Any],
        expected: dict[tuple[str, int], Expected],
        duration_s: float,
        warmup_s: float,
        say: Callable[[str], None],
    ) -> None:
        self.work = work
        self.logs = logs
        self.rows = rows
        self.expected = expected
        self.duration_s = duration_s
        self.warmup_s = warmup_s
        self.say = say

    def check(self, port: int, sc: Scenario, body: bytes) -> tuple[str | None, float | None]:
        try:
            status, payload = post(port, sc.protocol.path.format(model=sc.model), body)
        except (OSError, urllib.error.URLError) as exc:
            return f"request failed: {exc}", None
        if status != 200:
            return f"HTTP {status}: {str(payload)[:160]}", None
        return sc.protocol.check(payload, self.expected[(sc.model, sc.rows)])

    def _first_answer(
        self, server: procs.Server, port: int, cfg: Config
    ) -> tuple[float | None, str]:
        """Seconds from process start to the first correct answer to the probe."""
        sc = cfg.probe
        body = sc.protocol.body(self.rows[sc.rows])
        last = "no answer"
        while time.monotonic() - server.started_at < cfg.ready_timeout_s:
            if not server.alive():
                return None, f"server exited before answering: {server.log_tail()}"
            reason, _ = self.check(port, sc, body)
            if reason is None:
                return time.monotonic() - server.started_at, ""
            last = reason
            time.sleep(0.05)
        return None, f"no correct answer within {cfg.ready_timeout_s:.0f} s (last: {last})"

    def _settle(self, port: int, cfg: Config) -> None:
        """Every worker answers for every model (fresh connections land on any worker, and a
        worker that is still loading answers 503): ``settle_answers`` correct answers in a row
        per model and protocol, bounded to 60 s in all."""
        deadline = time.monotonic() + 60
        probes = {(sc.model, sc.protocol.key): sc for sc in [cfg.probe, *cfg.scenarios]}
        for sc in probes.values():
            body = sc.protocol.body(self.rows[sc.rows])
            streak = 0
            while streak < cfg.settle_answers and time.monotonic() < deadline:
                reason, _ = self.check(port, sc, body)
                streak = streak + 1 if reason is None else 0
                if reason is not None:
                    time.sleep(0.1)

    def run(self, cfg: Config, round_no: int) -> ServerRecord:
        port = procs.free_port()
        server = cfg.make(port)
        record = ServerRecord(round_no, cfg.key, ok=False)
        record.load_before = float(Path("/proc/loadavg").read_text().split()[0])
        server.start()
        try:
            ttfa, why = self._first_answer(server, port, cfg)
            if ttfa is None:
                record.reason = why
                self.say(f"  {cfg.label}: FAILED to start: {why}")
                return record
            record.ttfa_s = ttfa
            self._settle(port, cfg)
            pids = server.pids()
            record.processes = len(pids)
            record.rss_idle_mb, record.pss_idle_mb = procs.memory_mb(pids)
            self.say(
                f"  {cfg.label}: first correct answer after {ttfa:.1f} s; "
                f"PSS {record.pss_idle_mb:.0f} MB in {len(pids)} process(es)"
            )
            for sc in cfg.scenarios:
                record.measurements.append(self._measure(server, port, cfg, sc, round_no))
            pids = server.pids()
            record.rss_load_mb, record.pss_load_mb = procs.memory_mb(pids)
            record.ok = True
            return record
        finally:
            server.stop()

    def _measure(
        self, server: procs.Server, port: int, cfg: Config, sc: Scenario, round_no: int
    ) -> Measurement:
        m = Measurement(
            round_no, cfg.key, sc.key, sc.model, sc.protocol.key, sc.connections, sc.rows, False
        )
        body = sc.protocol.body(self.rows[sc.rows])
        reason, diff = self.check(port, sc, body)
        if reason is not None:
            m.reason = f"not measured: wrong or no answer ({reason})"
            self.say(f"    {sc.key}: {m.reason}")
            return m
        m.max_abs_diff = diff
        script = loadgen.write_script(
            self.work, f"{cfg.key}-{sc.key.replace('/', '-')}", body, "application/json"
        )
        url = f"http://127.0.0.1:{port}{sc.protocol.path.format(model=sc.model)}"
        try:
            if self.warmup_s > 0:
                loadgen.run(url, script, connections=sc.connections, seconds=self.warmup_s)
            cpu0 = server.cpu()
            res = loadgen.run(url, script, connections=sc.connections, seconds=self.duration_s)
            cpu1 = server.cpu()
        except Exception as exc:  # wrk missing/failed: record, keep going
            m.reason = f"not measured: {exc}"
            self.say(f"    {sc.key}: {m.reason}")
            return m
        if not server.alive():
            m.reason = f"server died under load: {server.log_tail()}"
        m.ok = server.alive()
        m.rps, m.errors, m.requests = res.rps, res.errors, res.requests
        m.p50_ms, m.p95_ms, m.p99_ms, m.max_ms = res.p50_ms, res.p95_ms, res.p99_ms, res.max_ms
        m.cpu_ms_per_req = (cpu1 - cpu0) * 1000 / res.requests if res.requests else None
        cpu = f"{m.cpu_ms_per_req:.2f}" if m.cpu_ms_per_req is not None else "-"
        self.say(
            f"    {sc.key:<24} {res.rps:8.0f} req/s  p50 {res.p50_ms:6.2f}  p95 {res.p95_ms:6.2f}"
            f"  p99 {res.p99_ms:6.2f} ms  errors {res.errors}  cpu {cpu} ms/req"
        )
        return m
