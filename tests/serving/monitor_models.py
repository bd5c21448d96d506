"""A Python-class model for monitoring tests: latency, failures and labels on demand."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from modelport.core.errors import InvalidInputError


class FlakyModel:
    """Columns ``x``, ``delay`` and ``fail``: sleeps the largest ``delay`` (seconds); a row with
    ``fail`` 1 makes the model fail (a 5xx answer), 2 refuses the input (a 4xx answer);
    ``label`` is 1 where ``x > 0``, ``score`` is ``x``."""

    def predict(self, inputs: Any) -> dict[str, np.ndarray]:
        x = np.asarray(inputs["x"], dtype=np.float64)
        delay = np.asarray(inputs["delay"], dtype=np.float64)
        fail = np.asarray(inputs["fail"], dtype=np.int64)
        time.sleep(float(delay.max()) if delay.size else 0.0)
        if (fail == 1).any():
            raise RuntimeError("injected model failure")
        if (fail == 2).any():
            raise InvalidInputError("injected client error")
        return {"label": (x > 0).astype(np.int64), "score": x}
