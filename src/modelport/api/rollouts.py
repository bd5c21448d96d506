"""Rollouts in a running server: the registry's view of its endpoints, and the controller.

``endpoint_plans`` is what every serving worker polls (``serving.endpoint_watch``): per recorded
deployment whose endpoint or model the server serves, the published route table, the version
the baseline names, and the versions to load ahead of traffic. While a rollout is under way
those are the rollout's own baseline and candidate (the numbers it started with: an alias such
as ``champion`` may move meanwhile); for a spec the controller has not started yet, what its
refs resolve to now.

``controller_runner`` runs the rollout controller (``rollout.controller``) beside the server,
through the registry: route tables published with compare-and-swap (``serving.traffic``), alias
moves with their history (``rollout.registry_ports``), the gates of ``api.gates`` (stored with
the candidate), and the server's own windows. Of all the processes sharing a modelport home
(the workers of one server, or several servers) one runs it: the holder of an exclusive lock on
``rollout-controller.lock`` there; the kernel releases it when that process dies and another
takes over at its next try. Decisions are compare-and-swap saves, so a second controller
(another home on the same PostgreSQL registry) never double-steps: it loses the save.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from modelport.api.gates import check_schema, run_regression, run_smoke
from modelport.api.registry import Registry
from modelport.core.clock import Clock, SystemClock
from modelport.core.deployment import DeploymentSpec
from modelport.core.errors import ModelportError
from modelport.core.refs import ModelRef
from modelport.core.rollouts import DeploymentRecord, RolloutRecord
from modelport.rollout.controller import Controller
from modelport.rollout.gate_report import GateReport
from modelport.rollout.outbox import load
from modelport.rollout.ports import WindowSource
from modelport.rollout.registry_ports import RegistryAliases
from modelport.serving.app import RunController
from modelport.serving.endpoints import EndpointPlan
from modelport.serving.router import RouteTable
from modelport.serving.traffic import RegistryTraffic

__all__ = [
    "CONTROLLER_ACTOR",
    "LOCK_FILE",
    "ControllerLease",
    "RegistryGates",
    "controller_runner",
    "endpoint_plans",
]

log = logging.getLogger("modelport.rollout")
LOCK_FILE = "rollout-controller.lock"
CONTROLLER_ACTOR = "controller"


# -- what servers route ---------------------------------------------------------------------------
def endpoint_plans(
    registry: Registry, models: Iterable[str], endpoints: Iterable[str] = ()
) -> list[EndpointPlan]:
    """The plans of the recorded endpoints named in ``endpoints`` or backed by one of
    ``models`` (see module doc)."""
    wanted_models, wanted_endpoints = frozenset(models), frozenset(endpoints)
    service = registry.service
    routes = {r.endpoint: r for r in service.list_routes()}
    plans = []
    for record in service.list_deployments():
        spec = record.spec
        if record.endpoint not in wanted_endpoints and spec.model not in wanted_models:
            continue
        baseline, preload = _versions(registry, record, service.latest_rollout(record.endpoint))
        table = None
        if record.endpoint in routes:
            published = routes[record.endpoint]
            table = RouteTable.from_dict(record.endpoint, published.table, published.generation)
        plans.append(EndpointPlan(record.endpoint, spec.model, baseline, table, preload))
    return plans


def _versions(
    registry: Registry, record: DeploymentRecord, rollout: RolloutRecord | None
) -> tuple[int | None, tuple[int, ...]]:
    """``(baseline, versions to preload)`` of one endpoint."""
    if rollout is not None and rollout.spec_revision == record.revision:
        state, _ = load(rollout.state)
        if rollout.finished_at is not None:
            kept = state.candidate_version if state.phase == "promoted" else None
            return state.baseline_version, (kept or state.baseline_version,)
        versions = (state.baseline_version, state.candidate_version)
        return state.baseline_version, tuple(v for v in versions if v is not None)
    spec = record.spec
    baseline = _resolve(registry, spec.baseline, record.endpoint)
    candidate = None if spec.candidate is None else _resolve(registry, spec.candidate, "")
    return baseline, tuple(v for v in (baseline, candidate) if v is not None)


def _resolve(registry: Registry, ref: ModelRef, endpoint: str) -> int | None:
    try:
        return registry.get(ref).number
    except ModelportError as exc:
        if endpoint:
            log.warning("endpoint %r: its baseline %s does not resolve: %s", endpoint, ref, exc)
        return None


# -- the gates ------------------------------------------------------------------------------------
class RegistryGates:
    """``rollout.ports.GateRunner`` over ``api.gates``: schema, then (if it passed) smoke and
    the regression gate the spec asks for; every report is stored with the candidate."""

    def __init__(self, registry: Registry, *, variant: str = "auto", clock: Clock | None = None):
        self._registry = registry
        self._variant = variant
        self._clock = clock

    def run(
        self, spec: DeploymentSpec, baseline_version: int, candidate_version: int
    ) -> list[GateReport]:
        registry, gates = self._registry, spec.gates
        candidate = ModelRef(spec.model, version=candidate_version)
        baseline = ModelRef(spec.model, version=baseline_version)
        schema = check_schema(
            registry, candidate, baseline, allow_breaking=gates.allow_breaking_schema
        )
        reports = [schema]
        if not schema.passed:
            return reports
        if gates.smoke.enabled:
            budget = gates.smoke.latency_budget_ms
            reports.append(run_smoke(registry, candidate, budget_ms=budget, variant=self._variant))
        regression = gates.regression
        if regression is not None:
            reports.append(
                run_regression(
                    registry,
                    candidate,
                    baseline,
                    regression.dataset,
                    regression.label_column,
                    tolerances=regression.metric_tolerances,
                    min_agreement=regression.min_agreement,
                    p95_budget_ms=regression.p95_budget_ms,
                    variant=self._variant,
                    clock=self._clock,
                )
            )
        return reports


# -- the controller -------------------------------------------------------------------------------
class ControllerLease:
    """An exclusive, non-blocking ``flock`` on a file: held by one process at a time, released
    by the kernel when the holder exits (however it exits)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> bool:
        if self._fd is not None:
            return True
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def build_controller(
    registry: Registry, windows: WindowSource, *, variant: str = "auto", clock: Clock | None = None
) -> Controller:
    """A controller acting through ``registry`` and judging by ``windows``."""
    clock = clock or SystemClock()
    store = registry.service.meta

    def resolve(ref: ModelRef) -> int:
        return registry.get(ref).number

    return Controller(
        store,
        windows,
        RegistryGates(registry, variant=variant),
        RegistryTraffic(store, actor=CONTROLLER_ACTOR),
        RegistryAliases(store, actor=CONTROLLER_ACTOR),
        clock,
        resolve=resolve,
        actor=CONTROLLER_ACTOR,
    )


def controller_runner(
    registry: Registry, interval_s: float, *, variant: str = "auto"
) -> RunController:
    """A ``serving.app.RunController``: wait for the lease (retrying every ``interval_s``),
    then tick the controller every ``interval_s`` until the server stops."""
    lease = ControllerLease(registry.settings.home / LOCK_FILE)

    async def run(windows: WindowSource, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                if lease.acquire():
                    log.info("this process runs the rollout controller")
                    controller = build_controller(registry, windows, variant=variant)
                    await controller.run(interval_s, stop)
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), interval_s)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("the rollout controller stopped")
        finally:
            lease.release()

    return run


def served_models(refs: Sequence[str]) -> set[str]:
    return {ModelRef.parse(r).name for r in refs}
