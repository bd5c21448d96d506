"""The alert rules' state in a serving worker: evaluation, the alert log, the webhook, and the
state kept across restarts (a JSON file, so an alert firing before a restart does not fire, and
notify, again). Blocking I/O: the monitor calls ``run`` from a thread."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from modelport.core.clock import Clock
from modelport.core.errors import InvalidInputError
from modelport.monitoring.alert_events import ActiveAlert, AlertEvent
from modelport.monitoring.alert_rules import AlertRule
from modelport.monitoring.alertlog import AlertLog
from modelport.monitoring.alerts import AlertEvaluator, Observation
from modelport.monitoring.notify import WebhookNotifier

__all__ = ["STATE_FILE", "AlertRunner"]

log = logging.getLogger("modelport.serving")
#: Name of the alert state file in the monitor's state directory.
STATE_FILE = "alert-state.json"


class AlertRunner:
    """The alert rules' evaluator, its state across restarts (``state_path``, JSON), the alert
    log and the webhook. Blocking: call ``run`` from a thread."""

    def __init__(
        self,
        rules: Sequence[AlertRule],
        clock: Clock,
        alert_log: AlertLog,
        notifier: WebhookNotifier | None,
        state_path: Path | None,
    ) -> None:
        self.rules = tuple(rules)
        self._clock = clock
        self._log = alert_log
        self._notifier = notifier
        self._path = state_path
        self._evaluator: AlertEvaluator | None = None
        self._saved: dict[str, Any] | None = None

    def _loaded(self) -> AlertEvaluator:
        """The evaluator, continuing from the saved state when there is one (read when this
        worker first evaluates, so a worker taking over the lead continues too)."""
        if self._evaluator is not None:
            return self._evaluator
        evaluator = AlertEvaluator(self.rules, self._clock)
        if self._path is not None and self._path.is_file():
            try:
                state = orjson.loads(self._path.read_bytes())
                evaluator = AlertEvaluator.from_state(self.rules, self._clock, state)
                self._saved = state
            except (orjson.JSONDecodeError, InvalidInputError) as exc:
                log.error(
                    "alert state %s is not valid (%s); starting with no active alerts",
                    self._path,
                    exc,
                )
        self._evaluator = evaluator
        return evaluator

    def run(self, observations: Sequence[Observation]) -> list[AlertEvent]:
        """Advance every alert; log, notify and save what changed; the events."""
        evaluator = self._loaded()
        events = evaluator.evaluate(observations)
        if events:
            if self._notifier is not None:
                self._notifier.send(events)
            self._log.record(events)
            for event in events:
                log.warning("alert %s: %s", event.status, event.summary)
        self._save(evaluator.export_state())
        return events

    def firing(self) -> list[ActiveAlert]:
        return [] if self._evaluator is None else self._evaluator.firing()

    def _save(self, state: dict[str, Any]) -> None:
        if self._path is None or state == self._saved:
            return
        self._path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._path.with_name(f".{self._path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(orjson.dumps(state))
        os.replace(tmp, self._path)
        self._saved = state
