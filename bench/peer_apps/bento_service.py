"""Run by ``bentoml serve`` in the BentoML venv: both benchmark models behind one service.

POST /lr and /hgb with ``{"rows": [[...20 floats...], ...]}`` answer ``predict_proba`` as JSON.
Models come from the joblib files named by BENCH_LR and BENCH_HGB.
"""

from __future__ import annotations

import os

import bentoml
import joblib
import numpy as np


@bentoml.service(workers=1)
class Bench:
    def __init__(self) -> None:
        self.lr = joblib.load(os.environ["BENCH_LR"])
        self.hgb = joblib.load(os.environ["BENCH_HGB"])

    @bentoml.api
    def lr_proba(self, rows: np.ndarray) -> np.ndarray:
        return self.lr.predict_proba(rows)

    @bentoml.api
    def hgb_proba(self, rows: np.ndarray) -> np.ndarray:
        return self.hgb.predict_proba(rows)
