"""Every prediction into this worker's rolling windows and the prediction log (event loop).

``PredictionRecorder`` is the data plane's ``PredictionObserver``. Per prediction it counts the
request in the rolling windows (an error is a 5xx answer: model failures, timeouts, shedding;
client errors count as requests but not as errors, as in the PromQL of
``monitoring.promrules``) and queues a ``PredictionRecord`` holding the raw inputs and outputs.
The log converts (redacts, caps, encodes) a record as it is submitted, which takes a few
microseconds, so the submit runs in a loop callback once the answer has gone out, in the time
the loop would otherwise spend waiting for the client's next request. Windows are keyed
``(endpoint, model, version)``, the endpoint named after the model for now.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from modelport.core.clock import Clock
from modelport.monitoring.predlog import PredictionLog, PredictionRecord
from modelport.serving.adapt import rows_of
from modelport.serving.http import error_status
from modelport.serving.manager import Served
from modelport.serving.monitor_windows import WorkerWindows
from modelport.serving.types import Prediction

__all__ = ["PredictionRecorder"]

log = logging.getLogger("modelport.serving")


@dataclass(frozen=True, slots=True)
class _Seen:
    """What ``observed`` needs of a served version, worked out once."""

    model: str
    version: str
    key: tuple[str, str, str]
    columns: tuple[str, ...] | None  # a columns signature: the names of a 2-D array's columns
    tensor: str | None  # a one-tensor signature: the name of that tensor


def _seen(served: Served) -> _Seen:
    signature = served.version.signature if served.version is not None else None
    columns = tensor = None
    if signature is not None and signature.kind == "columns":
        columns = tuple(spec.name for spec in signature.inputs if not spec.optional)
    elif signature is not None and len(signature.inputs) == 1:
        tensor = signature.inputs[0].name
    version = str(served.number)
    return _Seen(served.name, version, (served.name, served.name, version), columns, tensor)


class PredictionRecorder:
    """Records predictions in ``windows`` and (when set) the prediction ``log``."""

    def __init__(self, windows: WorkerWindows, clock: Clock) -> None:
        self.windows = windows
        self.log: PredictionLog | None = None
        self._clock = clock
        self._seen: dict[Served, _Seen] = {}
        self._failures = 0

    def forget(self, keep: set[Served]) -> None:
        """Drop what is cached about versions not in ``keep`` (retired)."""
        for gone in [s for s in self._seen if s not in keep]:
            del self._seen[gone]

    def observed(
        self,
        served: Served,
        inputs: Any,
        prediction: Prediction | None,
        latency_s: float,
        *,
        request_id: str,
        ok: bool,
        error: BaseException | None = None,
    ) -> None:
        """Count one prediction and queue its record; never raises."""
        try:
            seen = self._seen.get(served)
            if seen is None:
                seen = self._seen[served] = _seen(served)
            failed = not ok and (error is None or error_status(error) >= 500)
            self.windows.record(seen.key, latency_s, failed)
            writer = self.log
            if writer is None:
                return
            names = None
            if isinstance(inputs, np.ndarray):
                if seen.columns and inputs.ndim == 2 and inputs.shape[1] == len(seen.columns):
                    names = seen.columns
                elif seen.tensor is not None:
                    inputs = {seen.tensor: inputs}
            record = PredictionRecord(
                request_id=request_id,
                endpoint=seen.model,
                model=seen.model,
                version=seen.version,
                time=self._clock.now(),
                latency_s=latency_s,
                rows=prediction.rows if prediction is not None else rows_of(inputs),
                ok=ok,
                inputs=inputs,
                outputs=prediction.outputs if prediction is not None else None,
                input_names=names,
            )
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # not on a loop (a test, an embedding): submit at once
                writer.submit(record)
                return
            # Submitting converts the record (microseconds): after the answer has gone out,
            # in the time the loop would otherwise wait for the client's next request.
            loop.call_soon(self._submit, writer, record)
        except Exception:  # monitoring must never fail a request
            self._failed()

    def _submit(self, writer: PredictionLog, record: PredictionRecord) -> None:
        try:
            writer.submit(record)
        except Exception:  # a callback of the loop: never raise into it
            self._failed()

    def _failed(self) -> None:
        self._failures += 1
        if self._failures == 1 or self._failures % 10_000 == 0:
            log.exception("recording a prediction failed (%d times so far)", self._failures)
