from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).with_name("modelport")


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELPORT_")}
    return subprocess.run(
        [str(BIN), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def _next_commands_work(stdout: str, cwd: Path) -> None:
    """Every "next" command the quickstart prints works."""
    lines = [line for line in stdout.splitlines() if line.startswith("  modelport ")]
    assert lines
    for line in lines:
        args = line.split()[1:]
        if "--reason" in args:
            i = args.index("--reason")
            args = [*args[:i], "--reason", "better accuracy"]
        step = _run(*args, cwd=cwd)
        assert step.returncode == 0, (line, step.stderr)


def test_quickstart_rolls_a_better_version_out_and_a_bad_one_back(tmp_path: Path) -> None:
    done = _run("quickstart", "--step-interval", "4", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    for ref in ("breast-cancer:1", "breast-cancer:2", "breast-cancer:3"):
        assert ref in done.stdout
    assert "v2: promoted" in done.stdout
    assert "v3: rolled back" in done.stdout
    assert "accuracy" in done.stdout  # the figure that justified the rollback is printed
    assert (tmp_path / ".modelport" / "registry.db").is_file()
    shown = json.loads(
        _run("models", "show", "breast-cancer@champion", "--json", cwd=tmp_path).stdout
    )
    assert shown["version"] == 2
    history = json.loads(_run("rollout", "history", "breast-cancer", "--json", cwd=tmp_path).stdout)
    kinds = [e["kind"] for e in history]
    assert kinds.count("rollout.promoted") == 1
    assert kinds.count("rollout.rolled_back") == 1
    rollback = next(e for e in history if e["kind"] == "rollout.rolled_back")
    assert any(f["name"] == "accuracy" and f["outcome"] == "fail" for f in rollback["figures"])
    moves = json.loads(
        _run("alias", "history", "breast-cancer", "champion", "--json", cwd=tmp_path).stdout
    )
    assert [m["to_version"] for m in moves] == [1, 2]  # v3 never held the alias
    again = _run("quickstart", cwd=tmp_path)
    assert again.returncode != 0
    assert "--name breast-cancer-2" in again.stderr
    _next_commands_work(done.stdout, tmp_path)


def test_quickstart_without_the_rollout_registers_and_loads(tmp_path: Path) -> None:
    done = _run("quickstart", "--no-rollout", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "breast-cancer:1" in done.stdout
    assert "breast-cancer:2" in done.stdout
    listed = _run("models", "list", "--json", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    models = json.loads(listed.stdout)
    assert models[0]["name"] == "breast-cancer"
    assert models[0]["aliases"] == {"champion": 1, "challenger": 2}
    shown = json.loads(
        _run("models", "show", "breast-cancer@challenger", "--json", cwd=tmp_path).stdout
    )
    assert shown["metrics"]["accuracy"] > 0.9
    assert shown["trusted_types"] == [
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"
    ]
    _next_commands_work(done.stdout, tmp_path)
