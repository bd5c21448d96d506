"""Intra-op thread pinning.

``LoadContext.threads`` is the number of threads one prediction may use. Each runtime passes it
to its framework (onnxruntime ``intra_op_num_threads``/``inter_op_num_threads``, xgboost
``nthread``, lightgbm ``num_threads``). Frameworks that use OpenMP/BLAS without a knob of their own
(scikit-learn, e.g. HistGradientBoosting) run under a ``ThreadLimit``: a threadpoolctl limit
applied around each call in the calling thread. Without threadpoolctl nothing is limited here and
the environment (``OMP_NUM_THREADS``) is the caller's job; scikit-learn always installs it.
"""

from __future__ import annotations

import importlib.util
import threading
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from modelport.core.errors import InvalidInputError

__all__ = ["DEDICATED_PREFIX", "ThreadLimit", "check_threads", "dedicate_current_thread"]

DEDICATED_PREFIX = "modelport-predict"
_sticky = threading.local()


def dedicate_current_thread() -> None:
    """Treat the calling thread like the server's ``modelport-predict*`` threads: a limit is
    applied on its first call and left in place. The server calls this on its event loop thread,
    where fast models run inline."""
    _sticky.dedicated = True


def check_threads(threads: int | None) -> int | None:
    """``threads`` if it is None or a positive integer; ``InvalidInputError`` otherwise."""
    if threads is None:
        return None
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise InvalidInputError(
            f"threads must be a positive integer or unset, not {threads!r}; "
            "set it to the number of cores one model may use"
        )
    return threads


class ThreadLimit:
    """Caps OpenMP/BLAS threads while a prediction runs.

    ``start()`` inspects the native libraries once (call it after the model's framework is
    imported); each ``limit()`` then costs tens of microseconds.
    """

    def __init__(self, threads: int | None) -> None:
        self.threads = threads
        self._controller: Any = None

    def start(self) -> None:
        threads = check_threads(self.threads)
        if threads is None or importlib.util.find_spec("threadpoolctl") is None:
            return
        threadpoolctl = importlib.import_module("threadpoolctl")
        self._controller = threadpoolctl.ThreadpoolController()

    def limit(self) -> AbstractContextManager[object]:
        """The limit around one call. In the server's dedicated prediction threads (named
        ``modelport-predict*``) it is applied once and left in place: re-applying it per call
        costs tens of microseconds and resizes the OpenMP team every time. Anywhere else (a
        user's own thread) it is applied for the call and restored after. A thread marked with
        ``dedicate_current_thread()`` counts as dedicated."""
        if self._controller is None:
            return nullcontext()
        dedicated = getattr(_sticky, "dedicated", False)
        if dedicated or threading.current_thread().name.startswith(DEDICATED_PREFIX):
            if getattr(_sticky, "threads", None) != self.threads:
                self._controller.limit(limits=self.threads)  # kept for the thread's life
                _sticky.threads = self.threads
            return nullcontext()
        limiter: AbstractContextManager[object] = self._controller.limit(limits=self.threads)
        return limiter
