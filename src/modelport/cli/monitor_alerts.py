"""``modelport alerts``: firing alerts and their history (from a server or the alert log), and
alert rules checked or written as a Prometheus alerting-rules file."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from modelport.cli.context import AppContext, pass_app
from modelport.cli.monitor_common import (
    JSON_OPTION,
    TIMEOUT_OPTION,
    client,
    endpoint_argument,
    log_url_of,
    open_alert_log,
)
from modelport.cli.output import echo_json, format_table, short_time
from modelport.core.errors import ModelportError
from modelport.monitoring.alert_rules import load_rules
from modelport.monitoring.alertlog import MAX_LIMIT, AlertRecord
from modelport.monitoring.promrules import prometheus_rules

__all__ = ["alerts", "alerts_table", "history_table"]

ALERT_HEADERS = ("rule", "severity", "model", "version", "feature", "value", "threshold", "since")
HISTORY_HEADERS = ("time", "status", "rule", "severity", "model", "version", "feature", "value")


def _figure(kind: Any, value: Any) -> str:
    """A figure in its kind's unit when the kind is known: ``412 ms``, ``2.5%``, ``0.213``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "-"
    if kind == "p95_latency":
        return f"{value * 1000:.3g} ms"
    if kind in ("error_rate", "accuracy"):
        return f"{value * 100:.3g}%"
    return f"{value:.4g}"


def alerts_table(items: Sequence[Mapping[str, Any]]) -> str:
    """Firing alerts: one row each; a stale one (its figures are missing now) is marked."""
    rows = []
    for a in items:
        value = _figure(a.get("kind"), a.get("value"))
        rows.append(
            [
                a.get("rule"),
                a.get("severity"),
                a.get("model"),
                a.get("version"),
                a.get("feature"),
                f"{value} (stale)" if a.get("stale") else value,
                _figure(a.get("kind"), a.get("threshold")),
                short_time(a.get("since")),
            ]
        )
    return format_table(ALERT_HEADERS, rows)


def history_table(items: Sequence[Mapping[str, Any]]) -> str:
    """Alert transitions, newest first as given; the summary sentence closes each row."""
    rows = [
        [
            short_time(h.get("recorded_at") or h.get("ends_at") or h.get("starts_at")),
            h.get("status"),
            h.get("rule"),
            h.get("severity"),
            h.get("model"),
            h.get("version"),
            h.get("feature"),
            _figure(h.get("kind"), h.get("value")),
        ]
        for h in items
    ]
    return format_table(HISTORY_HEADERS, rows)


def _record_dict(record: AlertRecord) -> dict[str, Any]:
    return {"recorded_at": record.recorded_at.isoformat(), **record.event.to_json()}


class _ListByDefault(click.Group):
    """``alerts [ARGS]`` runs ``alerts list [ARGS]`` unless ARGS start with a subcommand."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ctx.help_option_names):
            args = ["list", *args]
        return super().parse_args(ctx, args)


@click.group(cls=_ListByDefault)
def alerts() -> None:
    """Firing alerts and alert rules.

    \b
    modelport alerts [ENDPOINT] [--history]   same as `alerts list`: ask the server
    modelport alerts --offline [--history]    read the alert log database (or --log-url DB)
    modelport alerts rules RULES.yaml --prometheus -o alerts.rules.yml
    """


@alerts.command("list", short_help="Firing alerts (and --history) of a server or the log.")
@endpoint_argument
@click.option("--history", is_flag=True, help="Also list recent firing/resolved transitions.")
@click.option(
    "--limit",
    type=click.IntRange(1, MAX_LIMIT),
    default=50,
    show_default=True,
    help="Transitions shown with --history.",
)
@click.option(
    "--offline",
    is_flag=True,
    help="Read the alert log database the server writes to instead of asking the server.",
)
@click.option(
    "--log-url",
    default=None,
    help="The alert log database (implies --offline; default: the server's, i.e. the "
    "registry's PostgreSQL database, else monitoring.db under --home).",
)
@TIMEOUT_OPTION
@JSON_OPTION
@pass_app
@click.pass_context
def alerts_list(
    ctx: click.Context,
    app: AppContext,
    endpoint: str,
    history: bool,
    limit: int,
    offline: bool,
    log_url: str | None,
    timeout: float,
    as_json: bool,
) -> None:
    """Firing alerts (RULE, SEVERITY, MODEL, VERSION, FEATURE, VALUE, THRESHOLD, SINCE) of the
    server at ENDPOINT (default: $MODELPORT_ENDPOINT, else http://127.0.0.1:8080), or, with
    --offline / --log-url, of the alert log database."""
    document: dict[str, Any]
    if offline or log_url is not None:
        if ctx.get_parameter_source("endpoint") == ParameterSource.COMMANDLINE:
            raise click.UsageError("give an ENDPOINT or --offline/--log-url, not both")
        with open_alert_log(log_url_of(app, log_url)) as log:
            document = {"firing": [e.to_json() for e in log.firing()]}
            if history:
                document["history"] = [_record_dict(r) for r in log.history(limit=limit)]
    else:
        api = client(endpoint, timeout)
        answer = api.get_json("/v2/monitoring/alerts", {"limit": limit})
        if not isinstance(answer, dict) or not isinstance(answer.get("firing"), list):
            raise ModelportError(
                f"{api.url('/v2/monitoring/alerts')} did not answer {{firing, history}}; is "
                f"{api.endpoint} a modelport server of this version?"
            )
        document = answer
    if as_json:
        echo_json(document)
        return
    firing = [a for a in document["firing"] if isinstance(a, dict)]
    click.echo(alerts_table(firing) if firing else "no firing alerts")
    if history:
        click.echo()
        click.echo("history (newest first):")
        click.echo(history_table([h for h in document.get("history") or [] if isinstance(h, dict)]))


@alerts.command("rules", short_help="Check alert rules; write a Prometheus rules file.")
@click.argument("rules_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--prometheus", is_flag=True, help="Write the equivalent Prometheus rules file.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where --prometheus writes (default: stdout).",
)
@click.option("--group", default="modelport", show_default=True, help="Prometheus rule group.")
@click.option(
    "--interval",
    type=click.IntRange(min=1),
    default=None,
    help="Evaluation interval of the group in seconds (default: Prometheus's global one).",
)
@JSON_OPTION
def alerts_rules(
    rules_file: Path,
    prometheus: bool,
    output: Path | None,
    group: str,
    interval: int | None,
    as_json: bool,
) -> None:
    """Check the alert rules in RULES_FILE (YAML with a `rules:` list) and list them; with
    --prometheus, write the equivalent Prometheus alerting-rules file. A bad rule exits 2 with
    its place in the file (`rules[2].threshold: ...`)."""
    if output is not None and not prometheus:
        raise click.UsageError("-o/--output goes with --prometheus")
    rules = load_rules(rules_file)
    if prometheus:
        text = prometheus_rules(rules, group=group, interval_s=interval)
        if output is None or str(output) == "-":
            click.echo(text, nl=not text.endswith("\n"))
            return
        tmp = output.with_name(f".{output.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, output)
        click.echo(
            f"wrote {len(rules)} alerting rule{'s' if len(rules) != 1 else ''} to {output} "
            f"(check it with: promtool check rules {output})",
            err=True,
        )
        return
    if as_json:
        echo_json([rule.model_dump(mode="json") for rule in rules])
        return
    rows = [
        [
            r.name,
            r.kind,
            r.model,
            r.version,
            r.feature if r.kind == "drift" else None,
            f"{'<' if r.fires_below else '>'} {_figure(r.kind, r.threshold)}"
            + (f" ({r.statistic})" if r.kind == "drift" else ""),
            f"{r.window_s}s",
            r.severity,
        ]
        for r in rules
    ]
    headers = ["name", "kind", "model", "version", "feature", "fires", "window", "severity"]
    click.echo(format_table(headers, rows))
