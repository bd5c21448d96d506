"""One round of the periodic evaluation of a serving worker (``ServerMonitor.evaluate``).

Per served version: drift and accuracy (``monitor_figures``, read from the prediction log in a
thread), the gauges they feed, the alert observations made of them and of the merged rolling
windows, the alert rules (``monitor_alerts``, in a thread), and the document the status shows.
The reference predictions of every version (its predictions on its reference sample) are
computed once, through its batcher, and forgotten when it is retired.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from modelport.core.clock import Clock
from modelport.monitoring.alerts import windows_needed
from modelport.monitoring.drift import DriftThresholds
from modelport.monitoring.logstore import SqlPredictionStore
from modelport.monitoring.metrics import ServingMetrics
from modelport.monitoring.windows import RollingWindow
from modelport.serving.config import MonitoringConfig
from modelport.serving.manager import ModelManager, Served
from modelport.serving.monitor_alerts import AlertRunner
from modelport.serving.monitor_figures import (
    Figures,
    Reference,
    Target,
    compute_figures,
    evaluation_document,
    observations,
    reference_predictions,
    set_gauges,
)

__all__ = ["Evaluator", "served_versions"]

log = logging.getLogger("modelport.serving")
Flushed = Callable[..., Any]
"""``flushed(read, *args)``: ``read(*args)`` once the worker's queued records are written."""


def served_versions(manager: ModelManager) -> list[Served]:
    """Every version the manager knows that resolved to a registry version."""
    out: list[Served] = []
    for name in manager.models():
        out.extend(s for s in manager.versions_of(name) if s.number >= 1 and s.version is not None)
    return out


class Evaluator:
    """Evaluates drift, accuracy and alert rules for the versions of one worker's manager."""

    def __init__(
        self,
        config: MonitoringConfig,
        manager: ModelManager,
        metrics: ServingMetrics,
        store: SqlPredictionStore,
        alerts: AlertRunner,
        clock: Clock,
        flushed: Flushed,
    ) -> None:
        self.config = config
        self.thresholds = DriftThresholds(
            psi=config.drift_psi, p_value=config.drift_p_value, min_samples=config.drift_min_samples
        )
        self._manager = manager
        self._metrics = metrics
        self._store = store
        self._alerts = alerts
        self._clock = clock
        self._flushed = flushed
        self._references: dict[Served, Reference | None] = {}

    async def reference(self, served: Served) -> Reference | None:
        """The version's predictions on its reference sample (None when it cannot have any).
        A version still loading has none yet: asked again at the next round, not cached."""
        if served.batcher is None:
            return None
        if served not in self._references:
            try:
                self._references[served] = await reference_predictions(served)
            except Exception as exc:  # no prediction drift for it, the rest goes on
                log.warning(
                    "no prediction drift for %s:%s: predicting its reference sample failed (%s)",
                    served.name,
                    served.number,
                    type(exc).__name__,
                )
                self._references[served] = None
        return self._references[served]

    async def run(self, merged: Mapping[int, RollingWindow]) -> dict[str, Any]:
        """One round over the merged windows of every worker; the status' evaluation document."""
        config, now, alerts = self.config, self._clock.now(), self._alerts
        served = served_versions(self._manager)
        live = set(served)
        for gone in [s for s in self._references if s not in live]:
            del self._references[gone]
        targets = []
        for s in served:
            assert s.version is not None
            profile = s.version.profile
            reference = await self.reference(s) if profile is not None else None
            targets.append(Target(s.name, str(s.number), profile, reference))
        rules = alerts.rules
        drift_windows = {config.drift_window_s} | {r.window_s for r in rules if r.kind == "drift"}
        accuracy_windows = {config.accuracy_window_s} | {
            r.window_s for r in rules if r.kind == "accuracy"
        }
        figures: Figures = await asyncio.to_thread(
            self._flushed,
            compute_figures,
            self._store,
            targets,
            sorted(drift_windows),
            sorted(accuracy_windows),
            self.thresholds,
            now,
        )
        set_gauges(self._metrics, figures, config.drift_window_s)
        in_windows = {(k[1], k[2]) for window in merged.values() for k in _keys(window)}
        versions = sorted({(t.model, t.version) for t in targets} | in_windows)
        await asyncio.to_thread(
            alerts.run, observations(merged, versions, figures, windows_needed(rules))
        )
        return evaluation_document(
            now,
            versions,
            figures,
            config.drift_window_s,
            config.accuracy_window_s,
            alerts.firing(),
        )


def _keys(window: RollingWindow) -> list[tuple[str, str, str]]:
    return window.keys()
