"""The fast path on the command line: ``register --no-fast-path``, ``models fastpath`` and the
``serving`` line of ``models show``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import NearestCentroid
from tests.cli.conftest import Cli


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    rng = np.random.default_rng(2)
    x = pd.DataFrame(rng.normal(size=(120, 3)), columns=["a", "b", "c"])
    y = (x["a"] - x["c"] > 0).astype(int)
    paths = {name: tmp_path / f"{name}.skops" for name in ("lr", "centroid")}
    skops.io.dump(LogisticRegression().fit(x, y), paths["lr"])
    skops.io.dump(NearestCentroid().fit(x, y), paths["centroid"])
    paths["example"] = tmp_path / "example.csv"
    x.head(4).to_csv(paths["example"], index=False)
    paths["train"] = tmp_path / "train.csv"
    x.to_csv(paths["train"], index=False)
    return paths


def register(cli: Cli, files: dict[str, Path], model: str, name: str, *extra: str) -> str:
    data = ("--input-example", str(files["example"]), "--training-data", str(files["train"]))
    return cli("register", str(files[model]), "--name", name, *data, "--yes", *extra).strip()


def serving_line(text: str) -> str:
    (line,) = [row for row in text.splitlines() if row.strip().startswith("serving")]
    return line.strip()


def test_register_builds_the_fast_path_and_show_says_it_serves(
    cli: Cli, files: dict[str, Path]
) -> None:
    assert register(cli, files, "lr", "fraud") == "fraud:1"
    line = serving_line(cli("models", "show", "fraud:1"))
    assert line.startswith("serving      onnx fast path (verified on 124 rows, max |Δ| ")
    assert line.endswith(" ≤ 1e-05)")
    detail = cli.json("models", "show", "fraud:1")
    assert detail["serving"] == {"variant": "onnx", "summary": line.removeprefix("serving      ")}
    (variant,) = detail["variants"]  # type: ignore[misc]
    assert (variant["status"], variant["checked_rows"]) == ("verified", 124)
    assert [f["path"] for f in variant["files"]] == ["model.onnx"]


def test_fast_path_on_demand_after_no_fast_path(cli: Cli, files: dict[str, Path]) -> None:
    assert register(cli, files, "lr", "fraud", "--no-fast-path") == "fraud:1"
    line = serving_line(cli("models", "show", "fraud:1"))
    assert line == (
        "serving      scikit-learn (no fast path; build one with "
        "`modelport models fastpath fraud:1`)"
    )
    assert cli.json("models", "show", "fraud:1")["variants"] == []

    out = cli("models", "fastpath", "fraud")
    assert out.startswith("fraud:1: onnx fast path (verified on 124 rows")
    built = cli.json("models", "fastpath", "fraud:1")
    assert built["ref"] == "fraud:1"
    assert built["variant"]["status"] == "verified"  # type: ignore[index]
    actions = [e["action"] for e in json.loads(cli("audit", "--model", "fraud", "--json"))]
    assert actions == ["version.register", "version.variant", "version.variant"]


def test_a_failed_fast_path_is_shown_with_its_reason(cli: Cli, files: dict[str, Path]) -> None:
    assert register(cli, files, "centroid", "nc") == "nc:1"
    line = serving_line(cli("models", "show", "nc:1"))
    assert line.startswith(
        "serving      scikit-learn (fast path failed: conversion failed: skl2onnx cannot "
        "convert the NearestCentroid"
    )
    out = cli("models", "fastpath", "nc:1", code=1)
    assert "fast path failed" in out

    bare = cli("register", str(files["lr"]), "--name", "bare", "--yes").strip()
    assert "not verifiable: no input example" in serving_line(cli("models", "show", bare))


def test_fastpath_refuses_other_formats(cli: Cli, tmp_path: Path) -> None:
    skl2onnx = pytest.importorskip("skl2onnx")
    features = np.random.default_rng(0).normal(size=(50, 3)).astype(np.float32)
    model = LogisticRegression().fit(features, (features[:, 0] > 0).astype(int))
    path = tmp_path / "model.onnx"
    path.write_bytes(skl2onnx.to_onnx(model, features[:1]).SerializeToString())
    assert cli("register", str(path), "--name", "onnxm").strip() == "onnxm:1"
    assert serving_line(cli("models", "show", "onnxm:1")) == "serving      onnx"
    err = cli("models", "fastpath", "onnxm:1", code=8)
    assert "scikit-learn versions" in err
