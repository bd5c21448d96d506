"""The serving benchmark: modelport against the raw floor and the peers, in one run.

    .venv/bin/python bench/serving.py [--quick] [--rounds 2] [--duration 8] [--no-peers]

Trains the two models, registers them in a throwaway modelport home, starts every server
configuration in turn (interleaved rounds: A,B,C,A,B,C), checks each answer, drives each
scenario with wrk, and writes ``bench/RESULTS.md`` (and the raw figures as JSON in
``bench/.work/``). See ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import models  # noqa: E402
import peers  # noqa: E402
import procs  # noqa: E402
import protocols as P  # noqa: E402
import report  # noqa: E402
import venvs  # noqa: E402
from runner import Config, Runner, Scenario, ServerRecord  # noqa: E402

ROOT = BENCH.parent
WORK = BENCH / ".work"
PY = ROOT / ".venv" / "bin" / "python"
MODELPORT = ROOT / ".venv" / "bin" / "modelport"
PEERS = ("mlflow", "mlserver", "bentoml")


class Clock:
    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def say(self, text: str) -> None:
        elapsed = time.monotonic() - self.t0
        print(f"[{int(elapsed // 60):02d}:{int(elapsed % 60):02d}] {text}", flush=True)


def core(protocol: P.Protocol, names: tuple[str, ...] = models.MODELS) -> list[Scenario]:
    """1 row at c=1 and c=16, 64 rows at c=1, for each model."""
    return [Scenario(name, protocol, c, r) for name in names for c, r in ((1, 1), (16, 1), (1, 64))]


def fastpath_status(home: Path) -> dict[str, dict[str, Any]]:
    """Per model: the ONNX variant as ``models show --json`` reports it."""
    out: dict[str, dict[str, Any]] = {}
    for name in models.MODELS:
        res = subprocess.run(
            [str(MODELPORT), "--home", str(home), "models", "show", f"{name}:1", "--json"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        try:
            shown = json.loads(res.stdout)
        except ValueError:
            out[name] = {"verified": False, "reason": f"models show failed: {res.stderr[-200:]}"}
            continue
        variants = shown.get("variants") or []
        onnx = next((v for v in variants if v.get("kind") == "onnx"), None)
        if onnx is None:
            out[name] = {"verified": False, "reason": "no variant recorded"}
        else:
            out[name] = {
                "verified": onnx.get("status") == "verified",
                "reason": onnx.get("reason", ""),
                "max_abs_diff": onnx.get("max_abs_diff"),
                "tolerance": onnx.get("tolerance"),
            }
    return out


def modelport_cmd(home: Path, refs: list[str], port: int, extra: list[str]) -> list[str]:
    return [str(MODELPORT), "--home", str(home), "serve", *refs, "--port", str(port),
            "--grace-period", "5", *extra]  # fmt: skip


def build_configs(
    args: argparse.Namespace,
    prepared: models.Prepared,
    fast: dict[str, dict[str, Any]],
    peer_envs: dict[str, venvs.PeerEnv],
    logs: Path,
    run_dir: Path,
    notes: dict[str, str],
) -> list[Config]:
    home, joblibs = prepared.home, prepared.joblib_paths
    raw_cmd = [str(PY), str(BENCH / "raw_floor.py")]

    def raw(names: tuple[str, ...], key: str) -> Any:
        def make(port: int) -> procs.Server:
            cmd = [*raw_cmd, "--port", str(port)]
            for n in names:
                cmd += ["--model", f"{n}={joblibs[n]}"]
            return procs.Server(key, cmd, logs / f"{key}.log")

        return make

    def mp(refs: list[str], key: str, extra: list[str]) -> Any:
        def make(port: int) -> procs.Server:
            return procs.Server(key, modelport_cmd(home, refs, port, extra), logs / f"{key}.log")

        return make

    hgb_probe = Scenario("hgb", P.V2, 1, 1)
    any_fast = any(v["verified"] for v in fast.values())
    invocations = [Scenario(n, p, 1, 1) for n in models.MODELS for p in (P.MP_SPLIT, P.MP_INPUTS)]
    configs = [
        Config("raw", "raw floor", "raw", raw(models.MODELS, "raw"), core(P.V2), hgb_probe),
        Config(
            "mp",
            "modelport (default: auto variant, batching, 1 worker)",
            "modelport",
            mp(["lr", "hgb"], "mp", []),
            core(P.V2) + ([] if args.quick else invocations),
            hgb_probe,
        ),
    ]
    if any_fast:
        configs.append(
            Config(
                "mp-original",
                "modelport --variant original",
                "modelport",
                mp(["lr", "hgb"], "mp-original", ["--variant", "original"]),
                core(P.V2),
                hgb_probe,
            )
        )
    else:
        notes["mp-original"] = (
            "no verified ONNX variant: `--variant auto` serves the original, so the default "
            "row stands for `--variant original`"
        )
    if not args.quick:
        configs += [
            Config("mp-w2", "modelport --workers 2", "modelport",
                   mp(["lr", "hgb"], "mp-w2", ["--workers", "2"]), core(P.V2), hgb_probe),
            Config("mp-nobatch", "modelport --no-batching", "modelport",
                   mp(["lr", "hgb"], "mp-nobatch", ["--no-batching"]), core(P.V2), hgb_probe),
            # monitoring (windows, prediction log, alerts) is on by default: what it costs
            Config("mp-nomon", "modelport --no-monitoring", "modelport",
                   mp(["lr", "hgb"], "mp-nomon", ["--no-monitoring"]), core(P.V2), hgb_probe),
        ]  # fmt: skip
        if any_fast:
            configs.append(
                Config("mp-original-nomon", "modelport --variant original --no-monitoring",
                       "modelport", mp(["lr", "hgb"], "mp-original-nomon",
                                       ["--variant", "original", "--no-monitoring"]),
                       core(P.V2), hgb_probe)
            )  # fmt: skip
    for i, extra in enumerate(args.mp, start=1):  # ad-hoc flags, e.g. --mp "--threads 1"
        key = f"mp-x{i}"
        configs.append(
            Config(key, f"modelport {extra}", "modelport",
                   mp(["lr", "hgb"], key, shlex.split(extra)), core(P.V2), hgb_probe)
        )  # fmt: skip
    # one model loaded: footprint and time to first answer (target e)
    startup = [Scenario("hgb", P.V2, 1, 1)]
    configs += [
        Config("raw-1", "raw floor, HGB only", "startup", raw(("hgb",), "raw-1"), startup,
               hgb_probe, settle_answers=5),
        Config("mp-1", "modelport, HGB only (default options)", "startup",
               mp(["hgb"], "mp-1", []), startup, hgb_probe, settle_answers=5),
    ]  # fmt: skip
    if args.quick or args.no_peers:
        return configs
    rows_json = run_dir / "payload-rows.json"
    env = peer_envs.get("mlflow")
    if env is not None and env.ok:
        try:
            dirs = peers.prepare_mlflow(run_dir, rows_json, joblibs)
            for n in models.MODELS:
                scen = [Scenario(n, P.MLFLOW_SPLIT, c, r) for c, r in ((1, 1), (16, 1), (1, 64))]
                scen.append(Scenario(n, P.MLFLOW_INPUTS, 1, 1))

                def make(port: int, d: Path = dirs[n], key: str = f"mlflow-{n}") -> procs.Server:
                    return peers.mlflow_server(d, port, logs / f"{key}.log", run_dir)

                configs.append(
                    Config(f"mlflow-{n}", f"mlflow models serve ({n.upper()})", "peer", make,
                           scen, Scenario(n, P.MLFLOW_SPLIT, 1, 1), ready_timeout_s=180)
                )  # fmt: skip
        except Exception as exc:
            notes["mlflow"] = f"not measured: {exc}"
    env = peer_envs.get("mlserver")
    if env is not None and env.ok:
        root = peers.prepare_mlserver(run_dir, joblibs)
        configs.append(
            Config("mlserver", "MLServer (mlserver-sklearn)", "peer",
                   lambda port: peers.mlserver_server(root, port, logs / "mlserver.log"),
                   core(P.MLSERVER_V2), Scenario("hgb", P.MLSERVER_V2, 1, 1),
                   ready_timeout_s=180)
        )  # fmt: skip
    env = peer_envs.get("bentoml")
    if env is not None and env.ok:
        configs.append(
            Config("bentoml", "BentoML", "peer",
                   lambda port: peers.bentoml_server(joblibs, port, logs / "bentoml.log", run_dir),
                   core(P.BENTO), Scenario("hgb", P.BENTO, 1, 1), ready_timeout_s=180)
        )  # fmt: skip
    return configs


def main() -> None:
    parser = argparse.ArgumentParser(description="modelport serving benchmark")
    parser.add_argument("--quick", action="store_true", help="short runs, no peers (<2 min)")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (2)")
    parser.add_argument(
        "--duration", type=float, default=None, help="seconds measured per scenario (7)"
    )
    parser.add_argument("--warmup", type=float, default=None, help="wrk warm-up seconds (1)")
    parser.add_argument("--no-peers", action="store_true", help="skip MLflow/MLServer/BentoML")
    parser.add_argument("--reinstall-peers", action="store_true")
    parser.add_argument("--only", default="", help="comma-separated config keys to run")
    parser.add_argument(
        "--mp",
        action="append",
        default=[],
        metavar="FLAGS",
        help='extra modelport configuration (repeatable), e.g. --mp "--threads 1": keys mp-x1...',
    )
    parser.add_argument("--max-minutes", type=float, default=40.0, help="overall time budget")
    parser.add_argument("--out", type=Path, default=BENCH / "RESULTS.md")
    args = parser.parse_args()
    rounds = args.rounds or (1 if args.quick else 2)
    duration = args.duration or (2.0 if args.quick else 7.0)
    warmup = args.warmup if args.warmup is not None else 1.0
    clock = Clock()
    say = clock.say
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_dir = WORK / "run"
    logs = WORK / "logs" / stamp
    logs.mkdir(parents=True, exist_ok=True)

    setup = subprocess.run(["bash", str(BENCH / "setup.sh")], capture_output=True, text=True,
                           timeout=700)  # fmt: skip
    if setup.returncode != 0:
        sys.exit(f"bench/setup.sh failed: {setup.stderr[-500:]}")
    say(f"wrk: {setup.stdout.strip()}")

    peer_envs: dict[str, venvs.PeerEnv] = {}
    installer = None
    if not (args.quick or args.no_peers):
        say("installing/checking peer venvs in the background (cached in bench/.work/venvs)")
        installer = threading.Thread(
            target=lambda: peer_envs.update(
                venvs.ensure_all(list(PEERS), reinstall=args.reinstall_peers, log=say)
            ),
            daemon=True,
        )
        installer.start()
    say("training and registering lr and hgb")
    prepared = models.prepare(run_dir, log=lambda s: say(f"  {s}"))
    fast = fastpath_status(prepared.home)
    for name, info in fast.items():
        say(f"  fast path of {name}: {'verified' if info['verified'] else 'none'} "
            f"({info['reason']})")  # fmt: skip
    if installer is not None:
        installer.join(timeout=venvs.INSTALL_TIMEOUT_S + 120)
        for n in PEERS:
            peer_envs.setdefault(n, venvs.PeerEnv(n, False, None, "install did not finish"))

    notes: dict[str, str] = {}
    configs = build_configs(args, prepared, fast, peer_envs, logs, run_dir, notes)
    if args.only:
        wanted = set(args.only.split(","))
        configs = [c for c in configs if c.key in wanted]
    runner = Runner(WORK, logs, prepared.rows, prepared.expected, duration, warmup, say)
    deadline = clock.t0 + args.max_minutes * 60
    records: list[ServerRecord] = []
    snapshots: dict[str, dict[str, str]] = {}
    for r in range(1, rounds + 1):
        for cfg in configs:
            if time.monotonic() > deadline:
                records.append(ServerRecord(r, cfg.key, False, "skipped: time budget spent"))
                continue
            say(f"round {r}/{rounds} · {cfg.label}")
            files = report.src_files()
            snapshots.setdefault(report.src_fingerprint(files), files)
            record = runner.run(cfg, r)
            record.src = report.src_fingerprint(files)
            records.append(record)

    meta = report.environment(peer_envs, fast, rounds, duration, warmup, args, stamp)
    meta["src_changed"] = report.changed_files(list(snapshots.values()))
    raw_out = WORK / f"results-{stamp}.json"
    raw_out.write_text(json.dumps({
        "meta": meta,
        "configs": [{"key": c.key, "label": c.label, "group": c.group} for c in configs],
        "notes": notes,
        "records": [dataclasses.asdict(rec) for rec in records],
    }, indent=1))  # fmt: skip
    text = report.render(meta, configs, records, notes, peer_envs)
    args.out.write_text(text)
    say(f"wrote {args.out} and {raw_out} in {(time.monotonic() - clock.t0) / 60:.1f} min")
    if len({rec.src for rec in records if rec.src}) > 1:
        say("WARNING: src/ changed during the run; the rounds measured different code")
    print()
    print(report.targets_text(meta, configs, records, notes, peer_envs))


if __name__ == "__main__":
    os.environ.setdefault("PIP_NO_INPUT", "1")
    main()
