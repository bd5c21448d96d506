"""Deployments and rollouts: ``modelport deploy``, ``modelport rollout ...`` and
``modelport deployments list``.

``deploy`` validates a spec, checks that its refs resolve and records it as the endpoint's next
revision; the rollout controller of a running ``modelport serve`` (``api.rollouts``) starts
the rollout from it. The operator commands (promote, rollback,
abort, pause, resume) are queued for that controller, which acts on them at its next step;
``status`` and ``history`` read what it recorded.

Exit codes: 2 for a spec with problems (one ``error:`` line each, naming the field), 3 for a ref,
dataset, endpoint or rollout that does not exist, 1 for a conflict (e.g. a rollout finished).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click

from modelport.api.deployments import (
    DeployPlan,
    describe,
    endpoint_status,
    format_duration,
    gate_names,
    read_spec,
)
from modelport.cli.context import AppContext, pass_app
from modelport.cli.errors import exit_code
from modelport.cli.output import echo_json, format_table, short_time
from modelport.cli.registry_commands import JSON_OPTION
from modelport.core.errors import SpecError
from modelport.core.rollouts import RolloutEventRecord, RolloutRecord

__all__ = ["deploy", "deployments", "events_table", "rollout"]

FIGURES_SHOWN = 3
EVENT_HEADERS = ["at", "rollout", "event", "phase", "actor", "reason", "figures"]
OPS: dict[str, str] = {
    "promote": "Promote the candidate now: it takes all traffic and the alias moves.",
    "rollback": "Roll back now: all traffic to the baseline; the rollout ends rolled back.",
    "abort": "Abort: all traffic to the baseline; the rollout ends aborted.",
    "pause": "Pause: hold the current weights and stop the stage clock (a failing analysis "
    "still triggers on_failure).",
    "resume": "Resume a paused rollout: its stage starts afresh, so no step is skipped.",
}


def _follow(endpoint: str) -> str:
    return f"follow it with `modelport rollout status {endpoint}`"


# -- deploy -------------------------------------------------------------------------------------


@click.command()
@click.argument(
    "spec_file", metavar="SPEC.yaml", type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option("--dry-run", is_flag=True, help="Validate and check the refs; record nothing.")
@JSON_OPTION
@pass_app
def deploy(app: AppContext, spec_file: Path, dry_run: bool, as_json: bool) -> int:
    """Record SPEC.yaml as its endpoint's next revision, for the rollout controller. Refs must
    resolve in the registry; an unchanged spec records nothing."""
    try:
        spec = read_spec(spec_file)
    except SpecError as exc:
        for line in exc.message.splitlines():
            click.secho(f"error: {line}", fg="red", err=True)
        return exit_code(exc)
    plan = app.registry().deploy(spec, dry_run=dry_run)
    if as_json:
        echo_json(plan.to_dict())
        return 0
    _show_plan(plan)
    return 0


def _show_plan(plan: DeployPlan) -> None:
    spec, ep = plan.spec, plan.spec.endpoint
    if plan.record is None:
        would = (
            f"revision {plan.latest_revision} holds it already"
            if plan.unchanged
            else f"would record revision {(plan.latest_revision or 0) + 1}"
        )
        click.echo(f"{ep}: the spec is valid and its refs resolve; {would} (dry run)")
    elif plan.unchanged:
        click.echo(f"{ep}: unchanged; spec revision {plan.record.revision} holds this spec")
    else:
        click.echo(f"{ep}: recorded spec revision {plan.record.revision}")
    click.echo(f"  baseline    {spec.baseline} → version {plan.baseline_version}")
    if spec.candidate is not None:
        click.echo(f"  candidate   {spec.candidate} → version {plan.candidate_version}")
        click.echo(f"  plan        {describe(spec)}")
        click.echo(f"  gates       {', '.join(gate_names(spec))}")
        click.echo(f"  on failure  {spec.on_failure}")
    else:
        click.echo(f"  plan        {describe(spec)}")
    if plan.rollout is not None:
        r = plan.rollout
        click.echo(
            f"note: rollout #{r.id} (spec revision {r.spec_revision}) is in progress, phase "
            f"{r.phase}"
        )
    if plan.record is not None and not plan.unchanged:
        click.echo(
            "a running `modelport serve` of the model starts it (its rollout controller); "
            f"{_follow(ep)}"
        )


# -- rollout ------------------------------------------------------------------------------------


@click.group()
def rollout() -> None:
    """Follow and steer an endpoint's rollout (commands are queued for the controller)."""


@rollout.command("status")
@click.argument("endpoint")
@JSON_OPTION
@pass_app
def rollout_status(app: AppContext, endpoint: str, as_json: bool) -> None:
    """Spec revision, phase, stage and weights of ENDPOINT's rollout, and its latest events."""
    status = endpoint_status(app.registry().service, endpoint)
    if as_json:
        echo_json(status.to_dict())
        return
    data = status.to_dict()
    click.echo(f"{endpoint}  spec revision {status.deployment.revision}: {data['plan']}")
    r = status.rollout
    if r is None:
        click.echo(
            f"  rollout     none yet; the rollout controller starts one from revision "
            f"{status.deployment.revision}"
        )
        return
    state = r.state
    behind = f" (the latest is {status.deployment.revision})"
    click.echo(
        f"  rollout     #{r.id} of spec revision {r.spec_revision}"
        f"{behind if r.spec_revision != status.deployment.revision else ''}, started "
        f"{short_time(r.created_at.isoformat())}, updated {short_time(r.updated_at.isoformat())}"
    )
    click.echo(f"  phase       {_phase(r, status.stage)}")
    click.echo(
        f"  versions    baseline {state.get('baseline_version')}, candidate "
        f"{state.get('candidate_version') or '-'}"
    )
    weights = data["weights"]
    click.echo(f"  weights     baseline {weights['baseline']}% / candidate {weights['candidate']}%")
    if state.get("shadow_fraction") is not None:
        click.echo(f"  shadow      {state['shadow_fraction']:.0%} of requests mirrored")
    if state.get("reason"):
        click.echo(f"  reason      {state['reason']}")
    for cmd in status.pending:
        why = f": {cmd.reason}" if cmd.reason else ""
        click.echo(f"  pending     {cmd.op} by {cmd.actor}{why} (command #{cmd.id})")
    if status.events:
        click.echo()
        click.echo(events_table(status.events, {r.id: r}))


def _phase(r: RolloutRecord, stage: Mapping[str, Any] | None) -> str:
    state = r.state
    text = r.phase.replace("_", " ")
    if r.phase == "paused":
        text += f" by {state.get('paused_by') or 'operator'}"
        if state.get("resume_phase"):
            text += f" (resumes {state['resume_phase']})"
    if stage is not None:
        text += (
            f", stage {stage['number']}/{stage['count']} (candidate at "
            f"{stage['candidate_weight']}%, holds {format_duration(stage['hold_s'])})"
        )
    if state.get("ready"):
        text += ", ready: waiting for `modelport rollout promote`"
    if r.finished_at is not None:
        text += f", finished {short_time(r.finished_at.isoformat())}"
    return text


@rollout.command("history")
@click.argument("endpoint")
@JSON_OPTION
@pass_app
def rollout_history(app: AppContext, endpoint: str, as_json: bool) -> None:
    """Every recorded transition of ENDPOINT's rollouts, oldest first: when, what changed, who,
    why, and the figures that justified it."""
    registry = app.registry()
    events = registry.rollout_history(endpoint)
    if as_json:
        echo_json([e.to_dict() for e in events])
        return
    by_id = {r.id: r for r in registry.rollouts(endpoint)}
    click.echo(events_table(events, by_id))


def events_table(events: Sequence[RolloutEventRecord], by_id: Mapping[int, RolloutRecord]) -> str:
    rows = []
    for e in events:
        r = by_id.get(e.rollout_id)
        versions = ""
        if r is not None:
            b, c = r.state.get("baseline_version"), r.state.get("candidate_version")
            versions = f" v{b}→v{c}" if c is not None else f" v{b}"
        rows.append(
            [
                short_time(e.at.isoformat()),
                f"#{e.rollout_id}{versions}",
                e.kind.removeprefix("rollout."),
                _change(e.phase_from, e.phase_to),
                e.actor,
                e.reason,
                _figures(e.figures),
            ]
        )
    return format_table(EVENT_HEADERS, rows, max_width=80)


def _change(before: str | None, after: str | None) -> str:
    if before and after and before != after:
        return f"{before} → {after}"
    return after or before or "-"


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def _figures(figures: Sequence[Mapping[str, Any]]) -> str:
    """The failing figures first (with their limit), then the others: ``error_rate 0.2 >
    0.05 FAIL, requests 500``."""

    def failed(f: Mapping[str, Any]) -> bool:
        return f.get("outcome") == "fail" or f.get("passed") is False

    shown = [f for f in figures if f.get("outcome") != "skip"]
    shown.sort(key=lambda f: not failed(f))
    parts = []
    for f in shown[:FIGURES_SHOWN]:
        text = f"{f.get('name')} {_number(f.get('figure'))}"
        if failed(f):
            op = f.get("op") or "vs"
            text += f" ({op} {_number(f.get('threshold'))}) FAIL"
        parts.append(text)
    if len(shown) > FIGURES_SHOWN:
        parts.append(f"+{len(shown) - FIGURES_SHOWN} more")
    return ", ".join(parts)


def _queue(op: str) -> click.Command:
    @click.argument("endpoint")
    @click.option("--reason", default="", help="Why; recorded with the command and audited.")
    @JSON_OPTION
    @pass_app
    def command(app: AppContext, endpoint: str, reason: str, as_json: bool) -> None:
        registry = app.registry()
        cmd = registry.rollout_command(endpoint, op, reason)
        if as_json:
            echo_json(cmd.to_dict())
            return
        current = registry.rollout(endpoint)
        phase = f" (phase {current.phase})" if current is not None else ""
        click.echo(
            f"{endpoint}: {op} queued as command #{cmd.id} for rollout #{cmd.rollout_id}{phase}; "
            "the rollout controller acts on it at its next step"
        )
        if current is not None and op == "resume" and current.phase != "paused":
            click.echo("note: the rollout is not paused, so resume will change nothing")
        if current is not None and op == "pause" and current.phase == "paused":
            click.echo("note: the rollout is paused already")

    command.__doc__ = OPS[op]
    return click.command(op)(command)


for _op in OPS:
    rollout.add_command(_queue(_op))


# -- deployments --------------------------------------------------------------------------------


@click.group()
def deployments() -> None:
    """Recorded deployment specs."""


@deployments.command("list")
@JSON_OPTION
@pass_app
def deployments_list(app: AppContext, as_json: bool) -> None:
    """The latest spec revision of every endpoint, with its newest rollout."""
    registry = app.registry()
    records = registry.deployments()
    latest: dict[str, RolloutRecord] = {}
    for each in registry.rollouts():
        latest[each.endpoint] = each  # oldest first: the last one wins
    if as_json:
        echo_json([{**d.to_dict(), "rollout": _brief(latest.get(d.endpoint))} for d in records])
        return
    rows = []
    for d in records:
        r = latest.get(d.endpoint)
        rows.append(
            [
                d.endpoint,
                d.revision,
                d.spec.strategy.kind,
                str(d.spec.baseline),
                str(d.spec.candidate) if d.spec.candidate else "-",
                f"#{r.id} {r.phase}" if r is not None else "-",
                short_time(d.created_at.isoformat()),
                d.created_by,
            ]
        )
    headers = ["endpoint", "revision", "strategy", "baseline", "candidate", "rollout", "recorded"]
    click.echo(format_table([*headers, "by"], rows))


def _brief(r: RolloutRecord | None) -> dict[str, Any] | None:
    if r is None:
        return None
    return {
        "id": r.id,
        "spec_revision": r.spec_revision,
        "phase": r.phase,
        "revision": r.revision,
        "finished": r.finished,
    }
