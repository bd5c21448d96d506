"""What a serving worker watches, owned by the app lifespan (``start``/``close``).

``recorder`` (``monitor_observe``) is the data plane's observer: every prediction goes into this
worker's rolling windows and the prediction log. Every ``evaluate_interval_s`` the leading worker
(the only one, or the one holding the shared lock, see ``monitor_windows``) computes per served
version, in a thread: drift of the inputs logged over ``drift_window_s`` against the version's
reference profile (and of its predictions), and accuracy over ``accuracy_window_s`` from
ground-truth feedback (``monitor_figures``). It sets the ``modelport_drift_score`` and
``modelport_accuracy`` gauges, evaluates the alert rules, records firing / resolved transitions
in the alert log (in the prediction log's database) and posts them to the webhook
(``monitor_alerts``), the alert state being saved in ``state_dir`` across restarts.

With several workers, ``status`` merges the rolling windows every live worker publishes in the
shared directory (each rewrites its own every ``publish_interval_s`` and when it answers a
status), and shows the leader's latest evaluation.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import shutil
import tempfile
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine

from modelport.core.clock import Clock
from modelport.core.errors import (
    InvalidInputError,
    ModelNotFoundError,
    NotFoundError,
    UnavailableError,
    VersionNotFoundError,
)
from modelport.monitoring.alert_rules import load_rules
from modelport.monitoring.alertlog import AlertLog
from modelport.monitoring.alerts import windows_needed
from modelport.monitoring.feedback import parse_feedback_csv, parse_feedback_json
from modelport.monitoring.logstore import SqlPredictionStore, default_log_url
from modelport.monitoring.logstore_schema import make_log_engine
from modelport.monitoring.metrics import ServingMetrics
from modelport.monitoring.notify import WebhookNotifier
from modelport.monitoring.predlog import PredictionLog, PredictionSink
from modelport.monitoring.predlog_process import ProcessSink
from modelport.monitoring.windows import RollingWindow
from modelport.serving.config import MonitoringConfig
from modelport.serving.manager import ModelManager, Served
from modelport.serving.monitor_alerts import STATE_FILE, AlertRunner
from modelport.serving.monitor_evaluate import Evaluator, served_versions
from modelport.serving.monitor_figures import compute_drift
from modelport.serving.monitor_observe import PredictionRecorder
from modelport.serving.monitor_report import (
    event_entry,
    feature_entry,
    record_entry,
    status_document,
)
from modelport.serving.monitor_windows import SharedDirectory, WorkerWindows

__all__ = ["ServerMonitor", "resolve_log_url"]

_LOG_BATCH = 2048
log = logging.getLogger("modelport.serving")
FLUSH_S = 5.0
_T = TypeVar("_T")


def resolve_log_url(config: MonitoringConfig, home: Path, registry_uri: str | None) -> str:
    """The prediction log database: the configured URL; else the registry's database when it
    is PostgreSQL (team mode); else ``monitoring.db`` under the modelport home."""
    if config.log_url:
        return config.log_url
    if registry_uri and registry_uri.split(":", 1)[0].split("+", 1)[0] == "postgresql":
        return registry_uri
    return default_log_url(home)


def _create(store: SqlPredictionStore, alert_log: AlertLog) -> None:
    store.create()
    alert_log.create()


class ServerMonitor:
    """Monitoring of one worker process; ``start``/``close`` from the app lifespan.

    ``log_url``: the prediction and alert log database (None: a SQLite file in a temporary
    directory, removed at ``close``, for tests and embedding); ``state_dir``: where the alert
    state is kept across restarts (None: not kept); ``shared_dir``: the directory the worker
    processes of one server share (None: this is the only one)."""

    def __init__(
        self,
        config: MonitoringConfig,
        manager: ModelManager,
        metrics: ServingMetrics,
        clock: Clock,
        *,
        log_url: str | None = None,
        state_dir: Path | None = None,
        shared_dir: Path | None = None,
        publish_interval_s: float = 1.0,
    ) -> None:
        self.config = config
        self.log_url = log_url
        self._manager = manager
        self._metrics = metrics
        self._clock = clock
        self._state_dir = state_dir
        self._shared = SharedDirectory(shared_dir) if shared_dir is not None else None
        self._publish_interval_s = publish_interval_s
        self._exports: dict[str, Callable[[], Any]] = {}
        self.recorder = PredictionRecorder(WorkerWindows([config.window_s], clock), clock)
        self._engine: Engine | None = None
        self._store: SqlPredictionStore | None = None
        self._alert_log: AlertLog | None = None
        self._notifier: WebhookNotifier | None = None
        self._evaluator: Evaluator | None = None
        self._evaluation: dict[str, Any] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._evaluating = asyncio.Lock()
        self._scratch: Path | None = None
        self._sink: ProcessSink | None = None

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        """Open the database (schema created in a thread), start the log writer, the webhook
        and the periodic tasks. Raises for bad rules, a bad webhook URL or an unusable database."""
        config = self.config
        rules = load_rules(Path(config.alert_rules)) if config.alert_rules else ()
        lengths = [config.window_s, *windows_needed(rules)]
        self.recorder.windows = WorkerWindows(lengths, self._clock)
        if config.webhook_url is not None:
            self._notifier = WebhookNotifier(config.webhook_url, config.webhook_allowed_hosts)
        url = self.log_url
        if url is None:
            self._scratch = Path(tempfile.mkdtemp(prefix="modelport-monitor-"))
            url = default_log_url(self._scratch)
        engine = self._engine = make_log_engine(url)
        store = SqlPredictionStore(engine, clock=self._clock)
        alert_log = AlertLog(engine, clock=self._clock)
        await asyncio.to_thread(_create, store, alert_log)
        state = self._state_dir / STATE_FILE if self._state_dir is not None else None
        alerts = AlertRunner(rules, self._clock, alert_log, self._notifier, state)
        self._evaluator = Evaluator(
            config, self._manager, self._metrics, store, alerts, self._clock, self._flushed
        )
        self._store, self._alert_log = store, alert_log  # the routes may use them from now
        if config.prediction_log:
            sink: PredictionSink = store
            if config.log_writer == "process":  # converted and written off this process's GIL
                sink = self._sink = ProcessSink(url, redact=config.redact)
            writer = PredictionLog(
                sink,
                sample_rate=config.log_sample_rate,
                redact=config.redact,
                capacity=config.log_capacity,
                # the writer takes the GIL from the loop once per batch, and each hand-over
                # costs the loop more than the records' own work: few, large batches
                batch_size=max(1, min(_LOG_BATCH, config.log_capacity // 4)),
                on_drop=self._dropped,
                clock=self._clock,
                convert_on_submit=True,  # on the loop: see PredictionLog's module doc
            )
            writer.start()
            self.recorder.log = writer
        if self._notifier is not None:
            self._notifier.start()
        self._tasks.append(self._every(config.evaluate_interval_s, self._evaluate_safely))
        if self._shared is not None:
            self._tasks.append(self._every(self._publish_interval_s, self._publish))

    def _every(self, seconds: float, job: Callable[[], Awaitable[None]]) -> asyncio.Task[None]:
        async def loop() -> None:
            while True:
                await asyncio.sleep(seconds)
                await job()

        return asyncio.create_task(loop(), name=f"modelport-monitor-{job.__name__}")

    async def close(self) -> None:
        """Stop the tasks, write what the log holds, stop the webhook, close the database."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        writer, self.recorder.log = self.recorder.log, None
        if writer is not None:
            await asyncio.to_thread(writer.close)
        if self._sink is not None:
            await asyncio.to_thread(self._sink.close)
        if self._notifier is not None:
            await asyncio.to_thread(self._notifier.close)
        if self._shared is not None:
            await asyncio.to_thread(self._shared.close)
        if self._engine is not None:
            self._engine.dispose()
        if self._scratch is not None:
            await asyncio.to_thread(shutil.rmtree, self._scratch, True)

    def _dropped(self, model: str, version: str, n: int) -> None:
        self._metrics.prediction_log_dropped.labels(model, version).inc(n)

    # -- windows across workers ---------------------------------------------------------------
    def share(self, name: str, export: Callable[[], Any]) -> None:
        """Publish ``export()`` (JSON-ready, taken on the loop) under ``name`` with this worker's
        windows, for its siblings to read from ``exchange`` (the shadow tally uses it)."""
        if name.isdigit():
            raise InvalidInputError(f"a shared export needs a name that is not a number: {name!r}")
        self._exports[name] = export

    def _export(self) -> dict[str, Any]:
        exported = self.recorder.windows.export()
        for name, export in self._exports.items():
            exported[name] = export()
        return exported

    async def _publish(self) -> None:
        if self._shared is not None:
            await asyncio.to_thread(self._shared.write_windows, self._export())

    async def exchange(self) -> list[dict[str, Any]]:
        """Publish this worker's exports and return its live siblings' (none with one worker)."""
        shared = self._shared
        if shared is None:
            return []
        exported = self._export()

        def exchange() -> list[dict[str, Any]]:
            shared.write_windows(exported)
            return shared.read_windows()

        return await asyncio.to_thread(exchange)

    async def merged_windows(
        self, others: list[dict[str, Any]] | None = None
    ) -> dict[int, RollingWindow]:
        """Every live worker's windows merged, by length (this worker's published first);
        ``others``: its siblings' exports when the caller already exchanged them."""
        if others is None:
            others = await self.exchange()
        return self.recorder.windows.merged(others)

    async def accuracy_since(
        self, model: str, version: int, since: datetime
    ) -> tuple[int, float | None]:
        """``(labeled requests' rows, accuracy or None)`` of ``model:version`` for predictions
        logged since ``since`` (None for regressions, and before any label arrives)."""
        store = self._store
        if store is None or self.recorder.log is None:
            return 0, None
        read = functools.partial(
            store.accuracy,
            model,
            self.config.accuracy_window_s,
            since,
            version=str(version),
            max_windows=1,
        )
        stats = (await asyncio.to_thread(self._flushed, read)).overall
        return stats.count, stats.accuracy

    # -- the periodic evaluation --------------------------------------------------------------
    async def _evaluate_safely(self) -> None:
        try:
            await self.evaluate()
        except Exception:  # the next round tries again; a dead task would stop alerting
            log.exception(
                "monitoring evaluation failed; retrying in %ss", self.config.evaluate_interval_s
            )

    async def _leading(self) -> bool:
        return self._shared is None or await asyncio.to_thread(self._shared.try_lead)

    async def evaluate(self) -> None:
        """One evaluation now (see module doc); a worker that does not lead does nothing."""
        async with self._evaluating:
            evaluator = self._evaluator
            if evaluator is None or not await self._leading():
                return
            merged = await self.merged_windows()
            self.recorder.forget(set(served_versions(self._manager)))
            self._evaluation = await evaluator.run(merged)
            if self._shared is not None:
                await asyncio.to_thread(self._shared.write_evaluation, self._evaluation)

    # -- the routes ---------------------------------------------------------------------------
    async def status(self, ready: bool) -> dict[str, Any]:
        """``GET /v2/monitoring/status``: per version, figures over ``window_s`` of every
        worker, with accuracy, drift and firing alerts from the latest evaluation."""
        now = self._clock.now()
        window = (await self.merged_windows())[self.config.window_s]
        evaluation = self._evaluation
        if self._shared is not None and (evaluation is None or not self._shared.leading):
            evaluation = await asyncio.to_thread(self._shared.read_evaluation) or evaluation
        states = {
            (s.model, str(s.version)): s.state for s in self._manager.statuses() if s.version >= 1
        }
        return status_document(now, self.config.window_s, ready, window, states, evaluation)

    def _flushed(self, read: Callable[..., _T], *args: Any) -> _T:
        """``read(*args)`` once this worker's queued records are written (waiting at most
        ``FLUSH_S``), so that it sees the predictions this worker answered so far. Blocking."""
        writer = self.recorder.log
        if writer is not None:
            writer.flush(FLUSH_S)
        return read(*args)

    def _require_store(self) -> SqlPredictionStore:
        if self._store is None:
            raise UnavailableError("this server's monitoring is starting; retry shortly")
        return self._store

    async def feedback(self, model: str, body: bytes, media: str) -> dict[str, Any]:
        """``POST /v2/models/{model}/feedback``: labels (JSON, or CSV ``id,label``) joined to
        this model's logged predictions; this worker's queued records are written first."""
        store = self._require_store()

        def store_labels() -> dict[str, Any]:
            if media == "text/csv":
                items = parse_feedback_csv(body, name="the feedback body")
            else:
                items = parse_feedback_json(body)
            result = self._flushed(store.add_feedback, model, items)
            return {"accepted": result.accepted, "unknown_ids": list(result.unknown_ids)}

        return await asyncio.to_thread(store_labels)

    def _version_of(self, model: str, number: int | None) -> Served:
        if number is None:
            return self._manager.route(model, None)
        versions = self._manager.versions_of(model)
        if not versions:
            raise ModelNotFoundError(f"model {model!r} is not served here")
        for served in versions:
            if served.number == number and served.version is not None:
                return served
        raise VersionNotFoundError(f"version {number} of {model!r} is not served here")

    async def drift(self, model: str, number: int | None, window_s: int | None) -> dict[str, Any]:
        """``GET /v2/models/{model}/drift``: drift of the version's logged inputs (and
        predictions) over the last ``window_s`` seconds, computed now."""
        store = self._require_store()
        served = self._version_of(model, number)
        assert served.version is not None
        profile = served.version.profile
        if profile is None:
            raise NotFoundError(
                f"{served.version.ref} has no reference profile to compare with; register the "
                "version with its training data to capture one"
            )
        length = window_s or self.config.drift_window_s
        evaluator = self._evaluator
        assert evaluator is not None  # set before the store
        reference = await evaluator.reference(served)
        since = self._clock.now() - timedelta(seconds=length)
        version = str(served.number)
        result = await asyncio.to_thread(
            self._flushed,
            compute_drift,
            store,
            model,
            version,
            profile,
            since,
            evaluator.thresholds,
            reference,
        )
        return {
            "model": model,
            "version": version,
            "window_s": length,
            "rows": result.rows,
            "features": [feature_entry(d) for d in result.features],
            "prediction": feature_entry(result.prediction) if result.prediction else None,
        }

    async def alerts(self, limit: int) -> dict[str, Any]:
        """``GET /v2/monitoring/alerts``: firing alerts and the newest ``limit`` transitions."""
        alert_log = self._alert_log
        if alert_log is None:
            raise UnavailableError("this server's monitoring is starting; retry shortly")

        def read() -> dict[str, Any]:
            return {
                "firing": [event_entry(e) for e in alert_log.firing()],
                "history": [record_entry(r) for r in alert_log.history(limit=limit)],
            }

        return await asyncio.to_thread(read)
