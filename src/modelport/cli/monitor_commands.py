"""``modelport status``: what each served version of a running server does, at a glance.

``drift`` lives in ``monitor_drift``, ``feedback`` in ``monitor_feedback``, ``alerts`` in
``monitor_alerts``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from modelport.cli.monitor_alerts import alerts_table
from modelport.cli.monitor_common import (
    JSON_OPTION,
    TIMEOUT_OPTION,
    client,
    endpoint_argument,
    millis,
    percent,
    verdict_text,
)
from modelport.cli.output import echo_json, format_table, short_time
from modelport.core.errors import ModelportError

__all__ = ["status"]

_DRIFT_WIDTH = 40


# -- status -----------------------------------------------------------------------------------
def _accuracy_cell(accuracy: Any) -> str:
    if not isinstance(accuracy, dict):
        return "-"
    labeled = accuracy.get("labeled")
    n = f" (n={labeled})" if labeled is not None else ""
    if accuracy.get("task") == "regression" or (
        accuracy.get("value") is None and accuracy.get("mae") is not None
    ):
        mae = accuracy.get("mae")
        return f"MAE {mae:.3g}{n}" if isinstance(mae, int | float) else f"-{n}"
    value = accuracy.get("value")
    return f"{value:.3f}{n}" if isinstance(value, int | float) else f"-{n}"


def _drift_cell(drift: Any) -> str:
    if not isinstance(drift, dict):
        return "-"
    text = verdict_text(drift.get("verdict"))
    drifted = [str(name) for name in drift.get("drifted") or []]
    if drifted:
        text += ": " + ", ".join(drifted)
    return text if len(text) <= _DRIFT_WIDTH else text[: _DRIFT_WIDTH - 1] + "…"


def _rate(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, int | float) else "-"


def _status_rows(versions: Sequence[Any]) -> list[list[str]]:
    rows = []
    for v in versions:
        if not isinstance(v, dict):
            continue
        rows.append(
            [
                str(v.get("model", "-")),
                str(v.get("version", "-")),
                str(v.get("state") or "-"),
                percent(v.get("traffic_share"), 0),
                _rate(v.get("rate_per_s")),
                millis(v.get("p50_ms")),
                millis(v.get("p95_ms")),
                millis(v.get("p99_ms")),
                percent(v.get("error_rate"), 2),
                _accuracy_cell(v.get("accuracy")),
                _drift_cell(v.get("drift")),
            ]
        )
    return rows


STATUS_HEADERS = ("model", "version", "state", "share", "rps", "p50", "p95", "p99", "errors")


@click.command(short_help="Live figures per version and firing alerts of a server.")
@endpoint_argument
@TIMEOUT_OPTION
@JSON_OPTION
def status(endpoint: str, timeout: float, as_json: bool) -> None:
    """Per version of a running server: traffic share, requests/s, p50/p95/p99 latency (ms),
    error rate, accuracy on labeled requests, drift verdict; then the firing alerts.

    ENDPOINT is the server's URL (default: $MODELPORT_ENDPOINT, else http://127.0.0.1:8080).
    Exit 6 when the server cannot be reached.
    """
    api = client(endpoint, timeout)
    document = api.get_json("/v2/monitoring/status")
    if not isinstance(document, dict) or not isinstance(document.get("versions", []), list):
        raise ModelportError(
            f"{api.url('/v2/monitoring/status')} did not answer a status document; is "
            f"{api.endpoint} a modelport server of this version?"
        )
    if as_json:
        echo_json(document)
        return
    ready = document.get("ready")
    window = document.get("window_s")
    click.echo(
        f"{api.endpoint}  ready: {'yes' if ready else 'no' if ready is not None else '-'}  "
        f"window: {f'{window:g}s' if isinstance(window, int | float) else '-'}  "
        f"at: {short_time(document.get('generated_at'))}  (latency in ms)"
    )
    headers = [*STATUS_HEADERS, "accuracy", "drift"]
    click.echo(format_table(headers, _status_rows(document.get("versions") or [])))
    firing = [a for a in document.get("alerts") or [] if isinstance(a, dict)]
    click.echo()
    if firing:
        click.echo(f"firing alerts ({len(firing)}):")
        click.echo(alerts_table(firing))
    else:
        click.echo("no firing alerts")
