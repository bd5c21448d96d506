from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from tests.cli.conftest import Cli

from modelport.cli.main import main

TREE = "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    rng = np.random.default_rng(1)
    x = pd.DataFrame(rng.normal(size=(200, 4)), columns=["a", "b", "c", "d"])
    y = (x["a"] > 0).astype(int)
    lr = tmp_path / "lr.skops"
    skops.io.dump(LogisticRegression().fit(x, y), lr)
    hgb = tmp_path / "hgb.skops"
    skops.io.dump(HistGradientBoostingClassifier(max_iter=5).fit(x, y), hgb)
    example = tmp_path / "example.csv"
    x.head(3).to_csv(example, index=False)
    train = tmp_path / "train.csv"
    x.to_csv(train, index=False)
    junk = tmp_path / "notes.txt"
    junk.write_text("not a model\n")
    return {"lr": lr, "hgb": hgb, "example": example, "train": train, "junk": junk}


def test_register_list_show_alias_audit(cli: Cli, files: dict[str, Path]) -> None:
    out = cli(
        "register",
        str(files["lr"]),
        "--name",
        "fraud",
        "--input-example",
        str(files["example"]),
        "--training-data",
        str(files["train"]),
        "--metric",
        "auc=0.93",
        "--tag",
        "team=risk",
        "--alias",
        "champion",
        "--yes",
    )
    assert out.strip() == "fraud:1"
    assert cli("register", str(files["lr"]), "--name", "fraud", "--yes").strip() == "fraud:2"

    table = cli("models", "list")
    assert table.splitlines()[0].split()[:3] == ["NAME", "LATEST", "ALIASES"]
    assert "fraud" in table
    listed = cli.json("models", "list")
    assert isinstance(listed, list)
    assert listed[0]["name"] == "fraud"
    assert listed[0]["latest_version"] == 2
    assert listed[0]["aliases"] == {"champion": 1}

    shown = cli("models", "show", "fraud@champion")
    assert "fraud:1" in shown
    assert "auc=0.93" in shown
    assert "training: fraud-training:1" in shown
    detail = cli.json("models", "show", "fraud:1")
    assert isinstance(detail, dict)
    assert detail["signature"]["inputs"][0] == {"name": "a", "dtype": "float64"}
    assert detail["datasets"][0]["role"] == "training"
    versions = cli.json("models", "show", "fraud")
    assert [v["version"] for v in versions] == [1, 2]  # type: ignore[union-attr,index]

    assert "1 -> 2" in cli("alias", "set", "fraud", "champion", "2", "--reason", "better auc")
    history = cli.json("alias", "history", "fraud", "champion")
    assert [(h["from_version"], h["to_version"], h["reason"]) for h in history] == [  # type: ignore[union-attr,index]
        (None, 1, "set at registration"),
        (1, 2, "better auc"),
    ]
    events = cli.json("audit", "--model", "fraud")
    actions = [e["action"] for e in events]  # type: ignore[union-attr,index]
    assert actions == [
        "version.register",
        "version.variant",  # the ONNX fast path, verified
        "alias.set",
        "version.register",
        "version.variant",  # no input example: recorded as failed
        "alias.set",
    ]
    assert cli.json("audit", "--model", "fraud", "--since", "2999-01-01") == []

    assert "matches the environment lock" in cli("env", "check", "fraud:1")
    assert cli.json("env", "check", "fraud:1") == []


def test_datasets_commands(cli: Cli, files: dict[str, Path]) -> None:
    assert cli("data", "register", str(files["train"]), "--name", "train").strip() == "train:1"
    assert cli("data", "register", str(files["train"]), "--name", "train").strip() == "train:1"
    listing = cli.json("data", "list")
    assert [(d["ref"], d["rows"]) for d in listing] == [("train:1", 200)]  # type: ignore[union-attr,index]
    shown = cli("data", "show", "train:1")
    assert "200 rows" in shown
    assert "mean=" in shown


def test_trust_types_are_required_and_recorded(cli: Cli, files: dict[str, Path]) -> None:
    err = cli("register", str(files["hgb"]), "--name", "hgb", "--yes", code=5)
    assert TREE in err
    assert "--trust-type" in err
    cli("models", "show", "hgb", code=3)
    assert (
        cli("register", str(files["hgb"]), "--name", "hgb", "--trust-type", TREE).strip() == "hgb:1"
    )
    assert cli.json("models", "show", "hgb:1")["trusted_types"] == [TREE]  # type: ignore[index]


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["models", "show", "ghost:1"], 3, "ghost"),
        (["models", "show", "bad/name"], 2, "not allowed"),
        (["alias", "set", "ghost", "champion", "1"], 3, "ghost"),
        (["models", "show", "fraud:x"], 2, "positive integer"),
        (["audit", "--since", "yesterday"], 2, "ISO"),
    ],
)
def test_errors_have_messages_and_exit_codes(
    cli: Cli, args: list[str], code: int, needle: str
) -> None:
    err = cli(*args, code=code)
    assert err.startswith("error: ")
    assert needle in err
    assert "Traceback" not in err


def test_unsupported_format_and_pickle(cli: Cli, files: dict[str, Path], tmp_path: Path) -> None:
    err = cli("register", str(files["junk"]), "--name", "x", code=8)
    assert "notes.txt" in err
    pkl = tmp_path / "m.pkl"
    pkl.write_bytes(b"\x80\x04K\x01.")
    err = cli("register", str(pkl), "--name", "x", code=5)
    assert "--trust-pickle" in err


def test_unreachable_database(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(
        [
            "--home",
            str(tmp_path),
            "--registry-uri",
            "postgresql+psycopg://nobody:secret@127.0.0.1:1/db",
            "models",
            "list",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 6
    assert "secret" not in err
    assert "127.0.0.1:1" in err


def test_predict_and_tampered_artifact_exit_code(cli: Cli, files: dict[str, Path]) -> None:
    cli("register", str(files["lr"]), "--name", "m", "--input-example", str(files["example"]))
    scored = json.loads(cli("predict", "m:1"))
    assert len(scored["predictions"]) == 3
    assert len(scored["probabilities"][0]) == 2
    scored = json.loads(cli("predict", "m:1", "--input", str(files["train"])))
    assert len(scored["predictions"]) == 200
    # truncate both the store's blob and the verified working copy the previous load left
    tampered = [p for p in (cli.home / "cache").rglob("*.skops")]
    tampered += [p for p in (cli.home / "artifacts" / "blobs").rglob("*") if p.is_file()]
    assert len(tampered) >= 2
    for blob in tampered:
        blob.chmod(0o644)
        blob.write_bytes(blob.read_bytes()[:-10])
    err = cli("predict", "m:1", code=4)
    assert "lr.skops" in err
    assert "Traceback" not in err
