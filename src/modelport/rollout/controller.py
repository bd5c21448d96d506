"""The rollout controller: applies the machine's decisions to traffic, aliases and the timeline.

``tick()`` visits every recorded deployment, one after another, each in a worker thread (the
ports block):

1. an outbox left by an earlier tick (``rollout.outbox``) is applied before anything else;
2. a spec revision newer than the last rollout's aborts that rollout if it is still running
   (routes back to its baseline) and starts a new one from the spec's resolved versions;
3. pending operator commands are stepped as ``Command``s, then fresh windows since the current
   stage began as an ``Observation``, or a ``Tick`` without them;
4. the decision is committed, then applied (``rollout.applier``);
5. in ``smoke`` the gates run once and their ``GatesReported`` is stepped and committed alike.

Crash safety is save-then-apply. One compare-and-swap save is the decision: the new state, its
rollout events, the commands it consumed (one transaction) and its traffic and alias effects
(the outbox, in the state). A controller that loses it (``ConflictError``: another controller
acted) applies nothing that tick. Effects are applied only after it, and the outbox is cleared
only after they are applied, so a crash in between leaves them saved; the next tick (of any
controller: another instance's outbox is taken over after ``recover_after_s``) applies them
before deciding anything. Traffic actions and alias moves are idempotent, so a repeat is
harmless; events and commands never repeat; the machine's terminal states ignore later events.
A rollback is therefore decided, recorded and applied exactly once, whatever fails in between.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import cast

from modelport.core.clock import Clock
from modelport.core.deployment import DeploymentSpec, spec_from_dict
from modelport.core.errors import (
    ConflictError,
    InvalidInputError,
    ModelportError,
    StoreError,
    UnavailableError,
)
from modelport.core.rollouts import NewRolloutEvent
from modelport.rollout.analysis import VersionWindow
from modelport.rollout.applier import Applier, EndpointTick, Item, TickReport, Trace
from modelport.rollout.gate_report import Check, GateReport, shorten
from modelport.rollout.machine import new_rollout, step
from modelport.rollout.outbox import Transition, document, load
from modelport.rollout.ports import (
    Aliases,
    DeploymentRecordLike,
    GateRunner,
    Resolve,
    RolloutRecordLike,
    RolloutStore,
    Traffic,
    WindowSource,
)
from modelport.rollout.state import (
    Command,
    Event,
    GatesReported,
    Observation,
    Op,
    RolloutState,
    Tick,
    plan,
)

__all__ = ["Controller", "EndpointTick", "Sleep", "TickReport"]

log = logging.getLogger("modelport.rollout")
Sleep = Callable[[float], Awaitable[None]]


class Controller:
    """Applies rollouts. ``resolve`` turns a spec's refs into version numbers when a rollout
    starts; ``actor`` is who the controller's own events and commands are recorded as."""

    def __init__(
        self,
        store: RolloutStore,
        windows: WindowSource,
        gates: GateRunner,
        traffic: Traffic,
        aliases: Aliases,
        clock: Clock,
        *,
        resolve: Resolve,
        actor: str = "controller",
        recover_after_s: float = 30.0,
    ) -> None:
        if not recover_after_s >= 0:
            raise InvalidInputError(f"recover_after_s must be 0 or more (got {recover_after_s})")
        self._store, self._windows, self._gates = store, windows, gates
        self._clock = clock
        self._resolve, self._actor = resolve, actor
        self._applier = Applier(
            store,
            traffic,
            aliases,
            clock,
            actor=actor,
            owner=f"{actor}/{uuid.uuid4().hex[:12]}",
            recover_after_s=recover_after_s,
        )

    async def tick(self) -> TickReport:
        at = self._clock.now()
        deployments = await asyncio.to_thread(self._store.list_deployments)
        done = [await asyncio.to_thread(self._visit, d) for d in deployments]
        return TickReport(at, tuple(done))

    async def run(
        self, interval_s: float, stop_event: asyncio.Event, *, sleep: Sleep | None = None
    ) -> None:
        """Tick every ``interval_s`` until ``stop_event`` is set; ``sleep`` replaces the wait
        (which otherwise ends early when the event is set)."""
        if not interval_s > 0:
            raise InvalidInputError(f"the rollout interval must be above 0 s (got {interval_s})")
        while not stop_event.is_set():
            try:
                await self.tick()
            except ModelportError as exc:  # the store is down: the next tick retries
                log.warning("rollout tick failed: %s; retrying in %gs", exc, interval_s)
            if stop_event.is_set():
                break
            await (sleep(interval_s) if sleep else _wait(stop_event, interval_s))

    # -- one endpoint ---------------------------------------------------------------------
    def _visit(self, deployment: DeploymentRecordLike) -> EndpointTick:
        trace = Trace(deployment.endpoint)
        try:
            self._reconcile(deployment, trace)
        except ConflictError as exc:
            trace.conflict = True
            log.info("endpoint %r: another controller acted first (%s)", trace.endpoint, exc)
            with contextlib.suppress(ModelportError):
                current = self._store.latest_rollout(deployment.endpoint)
                if current is not None:
                    trace.seen(current)
        except Exception as exc:  # one endpoint's failure must not stop the others
            log.exception("rollout of endpoint %r failed: %s", trace.endpoint, exc)
            trace.error = f"{type(exc).__name__}: {exc}"
        return trace.report()

    def _reconcile(self, deployment: DeploymentRecordLike, trace: Trace) -> None:
        record = self._store.latest_rollout(deployment.endpoint)
        if record is not None:
            state, outbox = load(trace.seen(record).state)
            if outbox is not None:
                record = self._applier.recover(record, state, outbox, trace)
                if record is None:
                    return
        if record is None or deployment.revision > record.spec_revision:
            if record is not None and record.finished_at is None:
                self._supersede(record, deployment.revision, trace)
            record = self._start(deployment, trace)
        if record.finished_at is not None:
            self._late_commands(record, trace)
        else:
            self._advance(record, trace)

    def _start(self, deployment: DeploymentRecordLike, trace: Trace) -> RolloutRecordLike:
        raw, where = deployment.spec, f"deployment {deployment.endpoint!r} r{deployment.revision}"
        spec = raw if isinstance(raw, DeploymentSpec) else spec_from_dict(dict(raw), where)
        candidate = None if spec.candidate is None else self._resolve(spec.candidate)
        state = new_rollout(
            spec,
            baseline_version=self._resolve(spec.baseline),
            candidate_version=candidate,
            now=self._clock,
        )
        record = self._store.start_rollout(
            spec.endpoint, deployment.revision, document(state), state.phase, self._actor
        )
        trace.started = True
        log.info("endpoint %r: rollout %s started for spec %s", spec.endpoint, record.id, where)
        return trace.seen(record)

    def _supersede(self, record: RolloutRecordLike, revision: int, trace: Trace) -> None:
        state, _ = load(record.state)
        why = f"superseded by spec revision {revision}"
        items: list[Item] = []
        commands = self._store.pending_commands(record.id)
        for cmd in commands:
            items.append(self._note(state, "rollout.command_rejected", why, cmd.actor))
        after = state
        if not state.terminal:
            after = self._step(state, Command("abort", self._actor, why), self._actor, items)
        self._applier.commit(record, state, after, items, [c.id for c in commands], trace)

    def _advance(self, record: RolloutRecordLike, trace: Trace) -> None:
        before, _ = load(record.state)
        items: list[Item] = []
        commands = self._store.pending_commands(record.id)
        state = before
        for cmd in commands:
            state = self._command(state, cmd.op, cmd.actor, cmd.reason, items)
        if not state.terminal:
            state = self._step(state, self._observe(state), self._actor, items)
        record = self._applier.commit(record, before, state, items, [c.id for c in commands], trace)
        if state.phase == "smoke" and record.finished_at is None:
            self._run_gates(record, state, trace)

    def _late_commands(self, record: RolloutRecordLike, trace: Trace) -> None:
        """Commands for a finished rollout change nothing: answered with an event, consumed."""
        commands = self._store.pending_commands(record.id)
        if not commands:
            return
        state, _ = load(record.state)
        items: list[Item] = []
        for cmd in commands:
            self._command(state, cmd.op, cmd.actor, cmd.reason, items)
        events = [e for e in items if isinstance(e, NewRolloutEvent)]
        self._store.add_rollout_events(record.id, events, self._actor)
        trace.events += [e.kind for e in events]
        for cmd in commands:
            self._applier.consume(cmd.id)

    def _run_gates(self, record: RolloutRecordLike, state: RolloutState, trace: Trace) -> None:
        assert state.candidate_version is not None
        try:
            reports = tuple(
                self._gates.run(state.spec, state.baseline_version, state.candidate_version)
            )
        except (UnavailableError, StoreError) as exc:  # retried next tick, until the timeout
            log.warning("endpoint %r: gates could not run: %s", state.endpoint, exc)
            trace.waiting = f"gates could not run: {exc}"
            return
        except ModelportError as exc:  # the candidate cannot be judged: it fails its gates
            reports = (_gate_error(state, exc),)
        items: list[Item] = []
        after = self._step(state, GatesReported(reports), self._actor, items)
        self._applier.commit(record, state, after, items, [], trace)

    # -- decisions ----------------------------------------------------------------------------
    def _observe(self, state: RolloutState) -> Event:
        """Fresh windows of the current stage, or a ``Tick`` when there are none (yet)."""
        candidate = state.candidate_version
        if candidate is None or state.stage_started_at is None:
            return Tick()
        if state.phase in ("pending", "smoke") or (
            state.phase == "paused"
            and (state.paused_by != "operator" or state.resume_phase in ("pending", "smoke"))
        ):
            return Tick()
        if not plan(state.spec)[state.stage].analysed:
            return Tick()
        since, baseline = state.stage_started_at, state.baseline_version
        try:
            found, shadow = self._windows.windows(state.endpoint, [baseline, candidate], since)
        except UnavailableError as exc:
            log.warning("endpoint %r: no windows: %s", state.endpoint, exc)
            return Tick()
        if candidate not in found:
            return Tick()
        return Observation(found.get(baseline, VersionWindow()), found[candidate], shadow, since)

    def _step(
        self, state: RolloutState, event: Event, actor: str, items: list[Item]
    ) -> RolloutState:
        at = self._clock.now()
        after, actions = step(state, event, at)
        if after != state or actions:
            items.append(Transition(state, after, tuple(actions), actor, at))
        return after

    def _command(
        self, state: RolloutState, op: str, actor: str, reason: str, items: list[Item]
    ) -> RolloutState:
        who, count = actor or self._actor, len(items)
        try:
            after = self._step(state, Command(cast(Op, op), actor, reason), who, items)
        except (ConflictError, InvalidInputError) as exc:
            items.append(self._note(state, "rollout.command_rejected", exc.message, who))
            return state
        if len(items) == count:
            phase = state.phase.replace("_", " ")
            why = f"{op} changes nothing: the rollout is {phase}"
            items.append(self._note(state, "rollout.command_ignored", why, who))
        return after

    def _note(self, state: RolloutState, kind: str, reason: str, actor: str) -> NewRolloutEvent:
        return NewRolloutEvent(
            kind, state.phase, state.phase, reason, (), actor or self._actor, self._clock.now()
        )


def _gate_error(state: RolloutState, exc: ModelportError) -> GateReport:
    model = state.spec.model
    detail = shorten(f"{type(exc).__name__}: {exc.message}")
    check = Check("gates_ran", None, None, False, detail)
    candidate, baseline = f"{model}:{state.candidate_version}", f"{model}:{state.baseline_version}"
    return GateReport("gates", candidate, baseline, (check,))


async def _wait(stop_event: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop_event.wait(), seconds)
