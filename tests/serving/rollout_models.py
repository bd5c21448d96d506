"""Python-class models for routing and rollout tests (registered as code: built without
arguments). ``Zero`` and ``AlsoZero`` answer 0 for every row of column ``x``; ``One`` answers
1, raises on rows above 100 and sleeps 0.6 s on rows above 50; ``ZeroOnY`` answers 0 for
column ``y``."""

from __future__ import annotations

import time
from typing import Any

import numpy as np


def _answer(inputs: Any, value: int) -> dict[str, np.ndarray]:
    x = np.asarray(inputs["x"], dtype=np.float64)
    return {"predictions": np.full(x.shape[0], value, dtype=np.int64)}


class Zero:
    def predict(self, inputs: Any) -> dict[str, np.ndarray]:
        return _answer(inputs, 0)


class AlsoZero:
    """Another version that agrees with ``Zero`` on every input."""

    def predict(self, inputs: Any) -> dict[str, np.ndarray]:
        return _answer(inputs, 0)


class One:
    def predict(self, inputs: Any) -> dict[str, np.ndarray]:
        x = np.asarray(inputs["x"], dtype=np.float64)
        if (x > 100).any():
            raise ValueError("this input breaks the model")
        if (x > 50).any():
            time.sleep(0.6)
        return _answer(inputs, 1)


class ZeroOnY:
    """A version whose input is column ``y``: registered after an ``x`` version, its schema
    breaks what the endpoint accepts."""

    def predict(self, inputs: Any) -> dict[str, np.ndarray]:
        y = np.asarray(inputs["y"], dtype=np.float64)
        return {"predictions": np.zeros(y.shape[0], dtype=np.int64)}
