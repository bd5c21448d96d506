"""What the monitoring commands share: options, the server client, the stores, cell formats."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from modelport.cli.context import AppContext
from modelport.cli.endpoint import DEFAULT_ENDPOINT, DEFAULT_TIMEOUT_S, EndpointClient
from modelport.core.errors import NotFoundError
from modelport.monitoring.alertlog import AlertLog
from modelport.monitoring.logstore import SqlPredictionStore, default_log_url

__all__ = [
    "ENDPOINT_ENV",
    "JSON_OPTION",
    "TIMEOUT_OPTION",
    "client",
    "endpoint_argument",
    "log_url_of",
    "millis",
    "open_alert_log",
    "open_prediction_store",
    "percent",
    "progress",
    "verdict_text",
]

ENDPOINT_ENV = "MODELPORT_ENDPOINT"
F = TypeVar("F", bound=Callable[..., Any])

JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")
TIMEOUT_OPTION = click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=DEFAULT_TIMEOUT_S,
    show_default=True,
    help="Seconds to wait for the server.",
)


def endpoint_argument(f: F) -> F:
    """An optional ENDPOINT argument: the URL given, else $MODELPORT_ENDPOINT, else the default."""
    return click.argument(
        "endpoint", required=False, envvar=ENDPOINT_ENV, default=DEFAULT_ENDPOINT
    )(f)


def client(endpoint: str, timeout: float) -> EndpointClient:
    return EndpointClient(endpoint, timeout=timeout)


def log_url_of(app: AppContext, log_url: str | None) -> str:
    """The monitoring database (prediction log and alert log) the server uses by default: the
    URL given; else the registry's database when it is PostgreSQL (team mode); else
    ``monitoring.db`` under the home (the rule of ``modelport serve``)."""
    if log_url:
        return log_url
    registry_uri = app.settings.registry_uri
    if registry_uri and registry_uri.split(":", 1)[0].split("+", 1)[0] == "postgresql":
        return registry_uri
    return default_log_url(app.settings.home)


def _require_sqlite_file(url: str, what: str) -> None:
    """SQLite would create a missing file on connect: a mistyped path must be an error."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return  # the store's own constructor reports the bad URL
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return
    path = Path(parsed.database)
    if not path.is_file():
        raise NotFoundError(
            f"no {what} at {path}: nothing has been logged under this home yet, or the path is "
            "wrong; give --log-url (the database the server writes to) or --home"
        )


def open_prediction_store(url: str) -> SqlPredictionStore:
    """The prediction log at ``url``, which must exist (a SQLite file) or be reachable."""
    _require_sqlite_file(url, "prediction log")
    return SqlPredictionStore.open(url)


def open_alert_log(url: str) -> AlertLog:
    """The alert log at ``url``, which must exist (a SQLite file) or be reachable."""
    _require_sqlite_file(url, "alert log")
    log = AlertLog(url)
    try:
        log.create()  # idempotent: a database the server has not written alerts to yet is empty
    except BaseException:
        log.close()
        raise
    return log


def progress(message: str) -> None:
    """A progress line for people, on stderr (stdout stays the result)."""
    click.echo(message, err=True)


# -- cells ------------------------------------------------------------------------------------
def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def percent(value: Any, digits: int = 1) -> str:
    """A fraction as a percentage (``0.0123`` → ``1.2%``); ``-`` when absent."""
    number = _number(value)
    return "-" if number is None else f"{number * 100:.{digits}f}%"


def millis(value: Any) -> str:
    """Milliseconds with 3 significant figures (``-`` when absent)."""
    number = _number(value)
    if number is None:
        return "-"
    return f"{number:.3g}" if number < 1000 else f"{number:.0f}"


def verdict_text(value: Any) -> str:
    """``insufficient_data`` and ``insufficient data`` both read ``insufficient data``."""
    return str(value).replace("_", " ") if value else "-"
