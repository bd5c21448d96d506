"""What the data plane tells monitoring about each prediction (``DataPlane`` and the shadow
mirror both call it; ``serving.monitor_observe.PredictionRecorder`` listens)."""

from __future__ import annotations

from typing import Any, Protocol

from modelport.serving.manager import Served
from modelport.serving.types import Prediction

__all__ = ["PredictionObserver"]


class PredictionObserver(Protocol):
    """Told about every prediction the data plane runs (monitoring listens here).

    Called on the event loop right after the model answered (``prediction``) or failed
    (``prediction`` None, ``error`` the exception): it must take microseconds and never raise.
    ``latency_s`` is the time spent queued and in the model; ``inputs`` are the model's input
    as it was run (not to be modified)."""

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
    ) -> None: ...
