"""A Python-class model for the monitoring end-to-end test: a fitted scikit-learn classifier,
shipped as the version's artifact, that fails on demand."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import skops.io

FEATURES = ("f0", "f1", "f2", "f3", "f4")
ARTIFACT = "classifier.skops"


class FailingClassifier:
    """Predicts with the classifier saved as ``classifier.skops`` in the artifacts, from columns
    f0..f4 (other columns are ignored). A request holding a row whose optional ``fail`` column
    is 1 fails as a whole (a 5xx answer). Outputs ``label`` (0/1) and ``proba`` (of 1)."""

    def load(self, artifacts: Path) -> None:
        path = Path(artifacts) / ARTIFACT
        self._model = skops.io.load(path, trusted=skops.io.get_untrusted_types(file=path))

    def predict(self, inputs: Any) -> dict[str, np.ndarray]:
        if "fail" in inputs.columns and (np.asarray(inputs["fail"]) == 1).any():
            raise RuntimeError("injected model failure")
        rows = inputs[list(FEATURES)]
        return {
            "label": np.asarray(self._model.predict(rows), dtype=np.int64),
            "proba": np.asarray(self._model.predict_proba(rows)[:, 1], dtype=np.float64),
        }
