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


def test_quickstart_from_an_empty_directory(tmp_path: Path) -> None:
    done = _run("quickstart", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "breast-cancer:1" in done.stdout
    assert "breast-cancer:2" in done.stdout
    assert (tmp_path / ".modelport" / "registry.db").is_file()
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
    # every "next" command the quickstart prints works
    for line in done.stdout.splitlines():
        if line.startswith("  modelport "):
            args = line.split()[1:]
            if "--reason" in args:
                i = args.index("--reason")
                args = [*args[:i], "--reason", "better accuracy"]
            step = _run(*args, cwd=tmp_path)
            assert step.returncode == 0, (line, step.stderr)
