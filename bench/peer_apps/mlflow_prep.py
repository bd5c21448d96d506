"""Run inside the MLflow venv: save the benchmark's fitted models as MLflow models (skops).

python mlflow_prep.py ROWS.json DEST NAME=MODEL.joblib [...]
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import joblib
import mlflow.sklearn
import numpy as np
from mlflow.models import infer_signature

TRUSTED = ["sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"]


def main() -> None:
    rows = np.asarray(json.loads(Path(sys.argv[1]).read_text())["64"], dtype=np.float64)
    dest = Path(sys.argv[2])
    for item in sys.argv[3:]:
        name, _, src = item.partition("=")
        model = joblib.load(src)
        out = dest / name
        if out.exists():
            shutil.rmtree(out)
        mlflow.sklearn.save_model(
            model,
            str(out),
            signature=infer_signature(rows, model.predict(rows)),
            skops_trusted_types=TRUSTED if name == "hgb" else None,
        )
        print(f"saved {name} -> {out}")


if __name__ == "__main__":
    main()
