"""``bench/RESULTS.md``: the environment, a table per scenario, footprint, and the issue's target
ratios, all from the records of one run. A cell that was not measured says why.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import protocols as P
import venvs
from runner import Config, ServerRecord

ROOT = Path(__file__).resolve().parent.parent
LIBS = ("modelport", "scikit-learn", "numpy", "scipy", "pandas", "starlette", "uvicorn",
        "uvloop", "httptools", "orjson", "onnxruntime", "skl2onnx", "skops", "pydantic")  # fmt: skip  # noqa: E501


def _run(cmd: list[str]) -> str:
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=20, cwd=ROOT)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (res.stdout or res.stderr).strip()


def environment(
    peer_envs: dict[str, venvs.PeerEnv],
    fast: dict[str, dict[str, Any]],
    rounds: int,
    duration: float,
    warmup: float,
    args: argparse.Namespace,
    stamp: str,
) -> dict[str, Any]:
    cpu = next(
        (ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
         if ln.startswith("model name")),
        "unknown",
    )  # fmt: skip
    mem_kb = next(
        int(ln.split()[1]) for ln in Path("/proc/meminfo").read_text().splitlines()
        if ln.startswith("MemTotal")
    )  # fmt: skip
    libs = {}
    for lib in LIBS:
        try:
            libs[lib] = version(lib)
        except PackageNotFoundError:
            libs[lib] = "not installed"
    rev = _run(["git", "rev-parse", "--short", "HEAD"])
    dirty = bool(_run(["git", "status", "--porcelain", "--", "src"]))
    argv = ["--quick"] if args.quick else []
    if args.rounds:
        argv += ["--rounds", str(args.rounds)]
    if args.duration:
        argv += ["--duration", f"{args.duration:g}"]
    if args.no_peers:
        argv.append("--no-peers")
    if args.only:
        argv += ["--only", args.only]
    for extra in args.mp:
        argv += ["--mp", repr(extra)]
    return {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "stamp": stamp,
        "command": " ".join([".venv/bin/python bench/serving.py", *argv]),
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "libs": libs,
        "git": f"{rev}{' + uncommitted changes in src/' if dirty else ''}",
        "wrk": " ".join(_run(["wrk", "--version"]).split()[:2]),
        "peers": {n: (e.versions if e.ok else {"error": e.reason}) for n, e in peer_envs.items()},
        "fast": fast,
        "rounds": rounds,
        "duration": duration,
        "warmup": warmup,
        "quick": args.quick,
    }


def src_files() -> dict[str, str]:
    """sha256 of every file under ``src/`` (content, not mtime), by path."""
    out = {}
    for path in sorted((ROOT / "src").rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            out[str(path.relative_to(ROOT))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def src_fingerprint(files: dict[str, str] | None = None) -> str:
    """A short hash of the whole source tree: the code a server ran."""
    files = src_files() if files is None else files
    return hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()[:10]


def changed_files(snapshots: list[dict[str, str]]) -> list[str]:
    """Files whose content differs between the snapshots taken during a run."""
    paths = set().union(*snapshots) if snapshots else set()
    return sorted(p for p in paths if len({snap.get(p) for snap in snapshots}) > 1)


# ---- aggregation -----------------------------------------------------------------------------


@dataclass
class Agg:
    rps: float | None = None
    rps_range: tuple[float, float] | None = None
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    errors: int = 0
    cpu: float | None = None
    diff: float | None = None
    rounds: int = 0
    reasons: list[str] = field(default_factory=list)


def _med(values: Sequence[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def aggregate(records: list[ServerRecord]) -> tuple[dict[tuple[str, str], Agg], dict[str, dict]]:
    per: dict[tuple[str, str], list[Any]] = {}
    fails: dict[tuple[str, str], list[str]] = {}
    servers: dict[str, list[ServerRecord]] = {}
    for rec in records:
        servers.setdefault(rec.config, []).append(rec)
        for m in rec.measurements:
            key = (m.config, m.scenario)
            if m.ok and m.rps is not None:
                per.setdefault(key, []).append(m)
            elif m.reason:
                fails.setdefault(key, []).append(m.reason)
    cells: dict[tuple[str, str], Agg] = {}
    for key in set(per) | set(fails):
        ms = per.get(key, [])
        rps = [m.rps for m in ms]
        cells[key] = Agg(
            rps=_med(rps),
            rps_range=(min(rps), max(rps)) if rps else None,
            p50=_med([m.p50_ms for m in ms]),
            p95=_med([m.p95_ms for m in ms]),
            p99=_med([m.p99_ms for m in ms]),
            errors=sum(m.errors or 0 for m in ms),
            cpu=_med([m.cpu_ms_per_req for m in ms]),
            diff=max((m.max_abs_diff for m in ms if m.max_abs_diff is not None), default=None),
            rounds=len(ms),
            reasons=sorted(set(fails.get(key, []))),
        )
    summary = {}
    for cfg, recs in servers.items():
        ok = [r for r in recs if r.ok]
        summary[cfg] = {
            "ttfa": _med([r.ttfa_s for r in ok]),
            "rss": _med([r.rss_load_mb for r in ok]),
            "pss": _med([r.pss_load_mb for r in ok]),
            "pss_idle": _med([r.pss_idle_mb for r in ok]),
            "procs": max((r.processes or 0 for r in ok), default=None),
            "reasons": sorted({r.reason for r in recs if not r.ok and r.reason}),
            "rounds": len(ok),
        }
    return cells, summary


# ---- rendering -------------------------------------------------------------------------------


def _f(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _scenario_title(model: str, c: int, rows: int) -> str:
    return f"{model.upper()}, {rows} row{'s' if rows > 1 else ''} per request, concurrency {c}"


def _label(cfg: Config, protocol: P.Protocol) -> str:
    if protocol.key == cfg.probe.protocol.key:
        return cfg.label
    return f"{cfg.label} — {protocol.label}"


def render(
    meta: dict[str, Any],
    configs: list[Config],
    records: list[ServerRecord],
    notes: dict[str, str],
    peer_envs: dict[str, venvs.PeerEnv],
) -> str:
    cells, servers = aggregate(records)
    out = [
        "# Serving benchmark results",
        "",
        f"Generated by `{meta['command']}` on {meta['date']} (run {meta['stamp']}); "
        "re-run it to refresh this page. How it works: `bench/README.md`.",
        "",
        "## Machine and software",
        "",
        f"- {meta['cores']} cores ({meta['cpu']}), {meta['memory_gib']} GiB, Linux "
        f"{meta['kernel']}, Python {meta['python']}; load from {meta['wrk']} on the same machine",
        f"- modelport at git {meta['git']}",
        "- project venv: " + ", ".join(f"{k} {v}" for k, v in meta["libs"].items()),
    ]
    for name, info in meta["peers"].items():
        if "error" in info:
            out.append(f"- {name}: not installable here: {info['error']}")
        else:
            out.append(f"- {name} venv: " + ", ".join(f"{k} {v}" for k, v in info.items()))
    if not meta["peers"]:
        out.append("- peers: not run (--quick or --no-peers)")
    out += [
        f"- method: wrk closed loop, 1 wrk thread, {meta['rounds']} interleaved round(s) "
        f"(every configuration once per round), {meta['warmup']:g} s warm-up + "
        f"{meta['duration']:g} s measured per scenario; figures are the median of rounds "
        "(req/s range across rounds in brackets); errors are summed over rounds",
        "- every server runs with OMP_NUM_THREADS=1 (and the BLAS equivalents) and binds "
        "127.0.0.1; each answer is checked against the fitted model before its scenario is "
        "measured; CPU ms/req is the user+system time of the server's whole process tree over "
        "the measured window divided by the requests answered",
    ]
    fast = meta["fast"]
    out.append(
        "- fast path (`models show --json`): "
        + "; ".join(
            f"{n}: {'verified ONNX variant' if v['verified'] else 'none'} ({v['reason']})"
            for n, v in fast.items()
        )
    )
    for key, note in notes.items():
        out.append(f"- {key}: {note}")
    versions: dict[str, list[str]] = {}
    for r in records:
        if r.src:
            versions.setdefault(r.src, []).append(f"{r.config}#{r.round}")
    if len(versions) > 1:
        out.append(
            "- **WARNING: the source under src/ changed during this run**, so rounds measured "
            "different code and their medians mix versions: "
            + "; ".join(
                f"`{v}`: {', '.join(c[:6])}{' ...' if len(c) > 6 else ''}"
                for v, c in versions.items()
            )
            + ". Files that changed: "
            + (", ".join(f"`{f}`" for f in meta.get("src_changed", [])[:20]) or "unknown")
            + ". Judge from them whether the request path changed; re-run on a quiet tree for "
            "figures of one version."
        )
    elif versions:
        out.append(
            f"- source fingerprint (sha256 of src/, same for every server): `{next(iter(versions))}`"  # noqa: E501
        )
    loads = sorted(r.load_before for r in records if r.load_before is not None)
    if loads:
        out.append(
            f"- machine load: 1-minute load average when each server started: min {loads[0]:.1f}, "
            f"median {statistics.median(loads):.1f}, max {loads[-1]:.1f} on {meta['cores']} "
            "cores (anything above ~1 means other processes shared the CPU with the run)"
        )
    out += ["", "## Targets (issue 3), ratios from this run", ""]
    out += targets_table(meta, configs, cells, servers, notes, peer_envs)
    out += ["", "## Throughput and latency, one table per scenario", ""]
    scenario_keys: list[tuple[str, int, int]] = []
    for cfg in configs:
        if cfg.group == "startup":
            continue
        for sc in cfg.scenarios:
            k = (sc.model, sc.connections, sc.rows)
            if k not in scenario_keys:
                scenario_keys.append(k)
    scenario_keys.sort(key=lambda k: (k[0] != "lr", k[2], k[1]))
    missing_peers = [(n, e.reason) for n, e in peer_envs.items() if not e.ok]
    footnotes: list[str] = []
    for model, c, rows in scenario_keys:
        out += [f"### {_scenario_title(model, c, rows)}", ""]
        out += ["| server | req/s | p50 ms | p95 ms | p99 ms | errors | CPU ms/req |",
                "|---|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
        for cfg in configs:
            if cfg.group == "startup":
                continue
            for sc in cfg.scenarios:
                if (sc.model, sc.connections, sc.rows) != (model, c, rows):
                    continue
                label = _label(cfg, sc.protocol)
                agg = cells.get((cfg.key, sc.key))
                if agg is None or agg.rps is None:
                    why = (
                        (agg.reasons if agg else None)
                        or servers.get(cfg.key, {}).get("reasons")
                        or ["not run"]
                    )
                    out.append(f"| {label} | {'; '.join(why)[:300]} | | | | | |")
                    continue
                rng = agg.rps_range
                span = f" ({rng[0]:,.0f}–{rng[1]:,.0f})" if rng and agg.rounds > 1 else ""
                if agg.rounds < meta["rounds"]:
                    footnotes.append(
                        f"{label}: {agg.rounds} of {meta['rounds']} rounds measured; "
                        + "; ".join(agg.reasons or ["the others did not run"])
                    )
                    span += f" [{agg.rounds}/{meta['rounds']} rounds, see note]"
                out.append(
                    f"| {label} | {agg.rps:,.0f}{span} | {_f(agg.p50, 2)} | {_f(agg.p95, 2)} | "
                    f"{_f(agg.p99, 2)} | {agg.errors} | {_f(agg.cpu, 2)} |"
                )
        for name, reason in missing_peers:
            out.append(f"| {name} | not installable here: {reason[:200]} | | | | | |")
        out.append("")
        for note in footnotes:
            out += [f"Note: {note[:400]}", ""]
        footnotes.clear()
    out += ["## Footprint and start-up", "",
            "Memory is the sum over the server's process tree after its scenarios ran "
            "(PSS splits shared pages between processes). Time to first correct answer runs "
            "from process start to the first correct prediction.", "",
            "| server | processes | RSS MB | PSS MB | PSS MB idle | first correct answer s |",
            "|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    for cfg in configs:
        s = servers.get(cfg.key)
        if s is None or s["rounds"] == 0:
            why = "; ".join(s["reasons"]) if s else "not run"
            out.append(f"| {cfg.label} | {why[:300]} | | | | |")
            continue
        out.append(
            f"| {cfg.label} | {s['procs']} | {_f(s['rss'], 0)} | {_f(s['pss'], 0)} | "
            f"{_f(s['pss_idle'], 0)} | {_f(s['ttfa'], 1)} |"
        )
    out.append("")
    return "\n".join(out) + "\n"


@dataclass
class Verdict:
    target: str
    measured: str
    verdict: str  # PASS / FAIL / not measured: ...


def _rps(cells: dict[tuple[str, str], Agg], cfg: str, scenario: str) -> tuple[Agg | None, str]:
    agg = cells.get((cfg, scenario))
    if agg is None:
        return None, f"{cfg} {scenario} not run"
    if agg.rps is None:
        return None, "; ".join(agg.reasons) or f"{cfg} {scenario} not measured"
    return agg, ""


def verdicts(
    meta: dict[str, Any],
    configs: list[Config],
    cells: dict[tuple[str, str], Agg],
    servers: dict[str, dict],
    notes: dict[str, str],
    peer_envs: dict[str, venvs.PeerEnv],
) -> list[Verdict]:
    keys = {c.key for c in configs}
    out: list[Verdict] = []
    orig = "mp-original" if "mp-original" in keys else "mp"
    variants = [(orig, "")]
    if "mp-original-nomon" in keys:
        variants.append(("mp-original-nomon", ", --no-monitoring [informational]"))
    for (orig, suffix), model in ((v, m) for v in variants for m in ("lr", "hgb")):
        sc = f"{model}/v2/c1/r1"
        base, why_b = _rps(cells, "raw", sc)
        ours, why_o = _rps(cells, orig, sc)
        name = f"(a) {model.upper()} c=1 1 row, --variant original{suffix} ≥ 0.85× raw floor"
        if base is None or ours is None:
            out.append(Verdict(name, "-", f"not measured: {why_b or why_o}"))
            continue
        ratio = ours.rps / base.rps  # type: ignore[operator]
        if ours.diff:  # scikit-learn answers bit-identically; float32 ONNX does not
            out.append(Verdict(
                name, f"{ours.rps:,.0f} vs {base.rps:,.0f} req/s = {ratio:.2f}×",
                f"not measured: `{orig}` did not serve scikit-learn (answers differ from it by "
                f"up to {ours.diff:.1g}, as float32 ONNX does): --variant original is not "
                "honoured",
            ))  # fmt: skip
            continue
        out.append(Verdict(name, f"{ours.rps:,.0f} vs {base.rps:,.0f} req/s = {ratio:.2f}×",
                           "PASS" if ratio >= 0.85 else "FAIL"))  # fmt: skip
    sc = "hgb/v2/c16/r1"
    base, why_b = _rps(cells, "raw", sc)
    for cfg in ("mp", "mp-original", "mp-w2", "mp-nomon"):
        if cfg not in keys:
            continue
        label = {
            "mp": "default",
            "mp-original": "--variant original",
            "mp-w2": "--workers 2",
            "mp-nomon": "--no-monitoring",
        }
        name = f"(b) HGB c=16 1 row, batching ({label[cfg]}): ≥ 3× raw, p95 < 40 ms, 0 errors"
        if cfg != "mp":
            name += " [informational]"
        ours, why_o = _rps(cells, cfg, sc)
        if base is None or ours is None:
            out.append(Verdict(name, "-", f"not measured: {why_b or why_o}"))
            continue
        ratio = ours.rps / base.rps  # type: ignore[operator]
        ok = ratio >= 3 and (ours.p95 or 1e9) < 40 and ours.errors == 0
        out.append(Verdict(
            name,
            f"{ours.rps:,.0f} vs {base.rps:,.0f} req/s = {ratio:.2f}×; p95 {_f(ours.p95, 1)} ms; "
            f"{ours.errors} errors",
            "PASS" if ok else "FAIL",
        ))  # fmt: skip
    fast_cfgs = [("mp", "")] + (
        [("mp-nomon", ", --no-monitoring [informational]")] if "mp-nomon" in keys else []
    )
    for cfg, suffix in fast_cfgs:
        out.append(_fast_path_verdict(meta, cells, cfg, suffix))
    out += _mlflow_verdicts(cells, peer_envs)
    out += _footprint_verdicts(servers)
    return out


def _fast_path_verdict(
    meta: dict[str, Any], cells: dict[tuple[str, str], Agg], cfg: str, suffix: str
) -> Verdict:
    name = f"(c) HGB c=1 1 row with the verified ONNX fast path{suffix} ≥ 4× raw floor"
    if not meta["fast"].get("hgb", {}).get("verified"):
        reason = meta["fast"].get("hgb", {}).get("reason", "")
        return Verdict(name, "-", f"not measured: fast path not available ({reason})")
    base, why_b = _rps(cells, "raw", "hgb/v2/c1/r1")
    ours, why_o = _rps(cells, cfg, "hgb/v2/c1/r1")
    if base is None or ours is None:
        return Verdict(name, "-", f"not measured: {why_b or why_o}")
    ratio = ours.rps / base.rps  # type: ignore[operator]
    served = (
        f"; answers differ from scikit-learn by ≤ {ours.diff:.1g} (float32: ONNX served)"
        if ours.diff
        else "; answers bit-identical to scikit-learn (was ONNX served?)"
    )
    return Verdict(name, f"{ours.rps:,.0f} vs {base.rps:,.0f} req/s = {ratio:.2f}×" + served,
                   "PASS" if ratio >= 4 else "FAIL")  # fmt: skip


def _mlflow_verdicts(
    cells: dict[tuple[str, str], Agg], peer_envs: dict[str, venvs.PeerEnv]
) -> list[Verdict]:
    out: list[Verdict] = []
    for model in ("lr", "hgb"):
        name = (
            f"(d) {model.upper()} /invocations dataframe_split c=1 1 row ≥ 3× mlflow models serve"
        )
        mine = cells.get(("mp", f"{model}/mp-split/c1/r1"))
        if mine is None:
            out.append(Verdict(name, "-", "not measured: modelport /invocations not run "
                               "(--quick or --only)"))  # fmt: skip
            continue
        if mine.rps is None:
            why = "; ".join(mine.reasons)
            if "HTTP 404" in why:
                why = "route missing"
            out.append(Verdict(name, "-", f"not measured: {why}"))
            continue
        peer = peer_envs.get("mlflow")
        if peer is None or not peer.ok:
            reason = "peers not run" if peer is None else f"mlflow not installable: {peer.reason}"
            out.append(Verdict(name, f"modelport {mine.rps:,.0f} req/s", f"not measured: {reason}"))
            continue
        theirs, why = _rps(cells, f"mlflow-{model}", f"{model}/split/c1/r1")
        if theirs is None:
            out.append(Verdict(name, f"modelport {mine.rps:,.0f} req/s", f"not measured: {why}"))
            continue
        ratio = mine.rps / theirs.rps  # type: ignore[operator]
        out.append(Verdict(name, f"{mine.rps:,.0f} vs {theirs.rps:,.0f} req/s = {ratio:.2f}×",
                           "PASS" if ratio >= 3 else "FAIL"))  # fmt: skip
    return out


def _footprint_verdicts(servers: dict[str, dict]) -> list[Verdict]:
    out: list[Verdict] = []
    raw1, mp1 = servers.get("raw-1"), servers.get("mp-1")
    for what, field_, unit in (("memory (PSS)", "pss", "MB"), ("time to first correct answer",
                                                                 "ttfa", "s")):  # fmt: skip
        name = f"(e) one model (HGB): {what} ≤ 1.5× raw floor"
        if not raw1 or not mp1 or raw1[field_] is None or mp1[field_] is None:
            why = "; ".join((raw1 or {}).get("reasons", []) + (mp1 or {}).get("reasons", []))
            out.append(Verdict(name, "-", f"not measured: {why or 'not run'}"))
            continue
        ratio = mp1[field_] / raw1[field_]
        out.append(Verdict(
            name, f"{mp1[field_]:,.1f} vs {raw1[field_]:,.1f} {unit} = {ratio:.2f}×",
            "PASS" if ratio <= 1.5 else "FAIL",
        ))  # fmt: skip
    return out


def targets_table(
    meta: dict[str, Any],
    configs: list[Config],
    cells: dict[tuple[str, str], Agg],
    servers: dict[str, dict],
    notes: dict[str, str],
    peer_envs: dict[str, venvs.PeerEnv],
) -> list[str]:
    lines = ["| target | measured | verdict |", "|---|---|---|"]
    for v in verdicts(meta, configs, cells, servers, notes, peer_envs):
        lines.append(f"| {v.target} | {v.measured} | **{v.verdict}** |"
                     if v.verdict in ("PASS", "FAIL") else
                     f"| {v.target} | {v.measured} | {v.verdict} |")  # fmt: skip
    return lines


def targets_text(
    meta: dict[str, Any], configs: list[Config], records: list[ServerRecord],
    notes: dict[str, str], peer_envs: dict[str, venvs.PeerEnv] | None = None,
) -> str:  # fmt: skip
    cells, servers = aggregate(records)
    rows = verdicts(meta, configs, cells, servers, notes, peer_envs or {})
    lines = []
    for v in rows:
        verdict = v.verdict if len(v.verdict) <= 160 else v.verdict[:157] + "..."
        lines.append(f"{v.target}\n    {v.measured} -> {verdict}")
    return "\n".join(lines)
