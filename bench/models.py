"""The benchmark's models and payloads: trained here, registered in a throwaway modelport home,
and saved with joblib for the raw floor and the peers (our own files in ``bench/.work``).

Every server gets byte-identical request rows; the expected answer of each payload is computed
locally from the same fitted objects, so each measurement starts with a correctness check.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import orjson
import pandas as pd

N_FEATURES = 20
MODELS = ("lr", "hgb")
HGB_TRUSTED = ["sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"]
ROW_COUNTS = (1, 64)
FEATURES = [f"f{i}" for i in range(N_FEATURES)]


def train() -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """The two fitted models and held-out rows to send (never seen in training)."""
    from sklearn.datasets import make_classification
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    X, y = make_classification(n_samples=5000, n_features=N_FEATURES, random_state=0)
    X_train, y_train, X_hold = X[:4000], y[:4000], X[4000:]
    models = {
        "lr": LogisticRegression(max_iter=1000).fit(X_train, y_train),
        "hgb": HistGradientBoostingClassifier(max_iter=100, random_state=0).fit(X_train, y_train),
    }
    return models, X_train, X_hold


@dataclass(frozen=True)
class Prepared:
    home: Path
    joblib_paths: dict[str, Path]
    rows: dict[int, np.ndarray]  # row count -> the rows every server receives
    expected: dict[tuple[str, int], dict[str, np.ndarray]]  # (model, rows) -> outputs


def prepare(work: Path, log: Any = print) -> Prepared:
    """Train, register both models in a fresh home, save the joblib copies, build payloads."""
    from modelport.api.registry import Registry
    from modelport.core.settings import Settings

    models, X_train, X_hold = train()
    home = work / "home"
    if home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True)
    train_frame = pd.DataFrame(X_train, columns=FEATURES)
    with Registry.open(settings=Settings(home=home)) as reg:
        for name, model in models.items():
            version = reg.register(
                model,
                name=name,
                input_example=X_train[:5],
                training_data=train_frame,
                trusted_types=HGB_TRUSTED if name == "hgb" else None,
                description=f"benchmark {type(model).__name__}",
            )
            log(f"registered {version.ref} ({version.format})")
    joblib_paths = {}
    for name, model in models.items():
        path = work / "models" / f"{name}.joblib"
        path.parent.mkdir(parents=True, exist_ok=True)
        joblib.dump(model, path)
        joblib_paths[name] = path
    rows = {n: np.ascontiguousarray(X_hold[:n]) for n in ROW_COUNTS}
    expected = {
        (name, n): {
            "probabilities": models[name].predict_proba(rows[n]),
            "predictions": models[name].predict(rows[n]),
        }
        for name in models
        for n in ROW_COUNTS
    }
    (work / "payload-rows.json").write_bytes(
        orjson.dumps({str(n): r for n, r in rows.items()}, option=orjson.OPT_SERIALIZE_NUMPY)
    )
    return Prepared(home, joblib_paths, rows, expected)


# ---- request bodies ------------------------------------------------------------------------


def v2_body(rows: np.ndarray, input_name: str, outputs: list[str] | None = None) -> bytes:
    body: dict[str, Any] = {
        "inputs": [
            {
                "name": input_name,
                "shape": list(rows.shape),
                "datatype": "FP64",
                "data": rows.reshape(-1).tolist(),
            }
        ]
    }
    if outputs:
        body["outputs"] = [{"name": o} for o in outputs]
    return orjson.dumps(body)


def mlflow_split_body(rows: np.ndarray) -> bytes:
    return orjson.dumps({"dataframe_split": {"data": rows.tolist()}})


def mlflow_inputs_body(rows: np.ndarray) -> bytes:
    return orjson.dumps({"inputs": rows.tolist()})


def bento_body(rows: np.ndarray) -> bytes:
    return orjson.dumps({"rows": rows.tolist()})


# ---- answers -------------------------------------------------------------------------------


def v2_output(payload: Any, name: str) -> np.ndarray | None:
    for out in payload.get("outputs", []) if isinstance(payload, dict) else []:
        if out.get("name") == name:
            return np.asarray(out["data"], dtype=float).reshape(out["shape"])
    return None


def close(got: Any, want: np.ndarray, tol: float) -> bool:
    try:
        arr = np.asarray(got, dtype=float).reshape(want.shape)
    except (TypeError, ValueError):
        return False
    return bool(np.allclose(arr, want, rtol=0, atol=tol))


def describe(value: Any, limit: int = 200) -> str:
    text = json.dumps(value) if not isinstance(value, str | bytes) else str(value)
    return text[:limit]
