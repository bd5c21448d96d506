"""Wire protocols the benchmark speaks: request body, path, and the correctness check.

Each check compares a server's answer with the output of the very fitted object the server
loaded (computed locally in ``models.prepare``) and returns ``None`` when it matches, else a
short reason. Probabilities must match within ``PROBA_TOL`` (the ONNX fast path computes in
float32; modelport verifies its variant to 1e-5); labels must match exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import models
import numpy as np

PROBA_TOL = 1e-5
Expected = Mapping[str, np.ndarray]


@dataclass(frozen=True)
class Protocol:
    key: str
    label: str  # shown after the server's name when it is not the server's main protocol
    path: str  # ``{model}`` is replaced by the model name
    body: Callable[[np.ndarray], bytes]
    answer: Callable[[Any], Any]  # the part of the JSON answer compared with `expected`
    expects: str  # "probabilities" or "predictions"

    def check(self, payload: Any, expected: Expected) -> tuple[str | None, float | None]:
        """(None, max |difference|) when the answer is right, else (reason, None)."""
        try:
            got = self.answer(payload)
        except (KeyError, TypeError, IndexError, ValueError):
            got = None
        if got is None:
            return f"unexpected answer {models.describe(payload)}", None
        want = expected[self.expects]
        try:
            arr = np.asarray(got, dtype=float).reshape(want.shape)
        except (TypeError, ValueError):
            return f"answer has the wrong shape: {models.describe(payload)}", None
        diff = float(np.max(np.abs(arr - want))) if want.size else 0.0
        tol = PROBA_TOL if self.expects == "probabilities" else 0.0
        if not diff <= tol:
            return f"wrong {self.expects}: max |difference| {diff:.3g} > {tol:g}", None
        return None, diff


def _predictions(payload: Any) -> Any:
    return payload["predictions"]


V2 = Protocol(
    "v2",
    "V2",
    "/v2/models/{model}/infer",
    lambda rows: models.v2_body(rows, "input", ["probabilities"]),
    lambda p: models.v2_output(p, "probabilities"),
    "probabilities",
)
MLSERVER_V2 = Protocol(
    "mlserver-v2",
    "V2",
    "/v2/models/{model}/infer",
    lambda rows: models.v2_body(rows, "input-0", ["predict_proba"]),
    lambda p: models.v2_output(p, "predict_proba"),
    "probabilities",
)
MLFLOW_SPLIT = Protocol(
    "split",
    "/invocations dataframe_split",
    "/invocations",
    models.mlflow_split_body,
    _predictions,
    "predictions",
)
MLFLOW_INPUTS = Protocol(
    "inputs",
    "/invocations inputs",
    "/invocations",
    models.mlflow_inputs_body,
    _predictions,
    "predictions",
)
# modelport serves two models, so its MLflow route is the per-model one (documented in
# serving/routes/mlflow.py); /invocations alone answers only on a single-model server.
MP_SPLIT = Protocol(
    "mp-split",
    "/invocations dataframe_split",
    "/models/{model}/invocations",
    models.mlflow_split_body,
    _predictions,
    "predictions",
)
MP_INPUTS = Protocol(
    "mp-inputs",
    "/invocations inputs",
    "/models/{model}/invocations",
    models.mlflow_inputs_body,
    _predictions,
    "predictions",
)
BENTO = Protocol("bento", "JSON", "/{model}_proba", models.bento_body, lambda p: p, "probabilities")
