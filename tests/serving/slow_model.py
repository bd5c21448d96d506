"""A Python-class model for serving tests: sleeps for the seconds in column 'delay'."""

from __future__ import annotations

import time
from typing import Any

import numpy as np


class SlowModel:
    def predict(self, inputs: Any) -> dict[str, np.ndarray]:
        delay = np.asarray(inputs["delay"], dtype=np.float64)
        time.sleep(float(delay.max()) if delay.size else 0.0)
        return {"predictions": delay * 2}


class EchoModel:
    """Echoes a string column back, upper-cased, and counts characters."""

    def predict(self, inputs: Any) -> dict[str, np.ndarray]:
        text = np.asarray(inputs["text"], dtype=object)
        upper = np.array([str(t).upper() for t in text], dtype=object)
        return {"upper": upper, "length": np.array([len(str(t)) for t in text], dtype=np.int64)}
