"""``modelport serve``: run the data plane for one or more model refs."""

from __future__ import annotations

import functools
from pathlib import Path

import click

from modelport.api.deployments import read_spec
from modelport.api.serve import build_app
from modelport.cli.context import AppContext, pass_app
from modelport.monitoring.alert_rules import load_rules
from modelport.monitoring.webhook import parse_webhook_url
from modelport.serving.config import (
    LogFormat,
    LogLevel,
    LogWriter,
    MonitoringConfig,
    ServeConfig,
)
from modelport.serving.logs import configure_logging
from modelport.serving.server import run

__all__ = ["serve"]


@click.command()
@click.argument("refs", nargs=-1)
@click.option(
    "--spec",
    "specs",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Record this deployment spec (as `modelport deploy` does) and serve its endpoint, "
    "rollout included (repeatable).",
)
@click.option(
    "--rollouts/--no-rollouts",
    default=True,
    show_default=True,
    help="Run the rollout controller here (one process per modelport home runs it).",
)
@click.option(
    "--rollout-interval",
    "rollout_interval_s",
    default=1.0,
    show_default=True,
    type=click.FloatRange(0, 3600, min_open=True),
    help="Seconds between rollout controller ticks.",
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@click.option(
    "--grpc-port",
    default=None,
    type=click.IntRange(0, 65535),
    help="Also serve the V2 gRPC service on this port.",
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Worker processes sharing the port.",
)
@click.option(
    "--threads",
    default=None,
    type=click.IntRange(1, 256),
    help="Framework threads per worker (default: cores / workers).",
)
@click.option("--no-batching", is_flag=True, help="Disable adaptive batching.")
@click.option("--max-batch-size", default=64, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--max-batch-wait-ms", default=2.0, show_default=True, type=float)
@click.option("--max-queue", default=512, show_default=True, type=click.IntRange(1, 1_000_000))
@click.option("--max-body-bytes", default=8 * 1024 * 1024, show_default=True, type=int)
@click.option(
    "--timeout",
    "default_timeout_s",
    default=None,
    type=float,
    help="Default per-request deadline in seconds.",
)
@click.option(
    "--poll-interval",
    "poll_interval_s",
    default=2.0,
    show_default=True,
    type=float,
    help="Seconds between checks for alias moves.",
)
@click.option("--grace-period", "grace_period_s", default=20.0, show_default=True, type=float)
@click.option(
    "--variant", type=click.Choice(["auto", "original", "onnx"]), default="auto", show_default=True
)
@click.option(
    "--no-monitoring",
    is_flag=True,
    help="No rolling-window figures, prediction log, drift, accuracy or alerts.",
)
@click.option(
    "--no-prediction-log",
    is_flag=True,
    help="Do not record predictions (feedback, accuracy and drift then have no data).",
)
@click.option(
    "--log-writer",
    type=click.Choice(["thread", "process"]),
    default="thread",
    show_default=True,
    help="Write the prediction log from a thread of each worker, or from a child process "
    "(less CPU taken from requests at thousands of requests per second, ~125 MB more memory).",
)
@click.option(
    "--log-sample-rate",
    default=1.0,
    show_default=True,
    type=click.FloatRange(0.0, 1.0),
    help="Share of requests recorded in the prediction log (by a hash of the request id).",
)
@click.option(
    "--redact",
    multiple=True,
    metavar="FIELD",
    help="Input or output field never written to the prediction log (repeatable).",
)
@click.option(
    "--log-url",
    default=None,
    help="Prediction and alert log database (default: the registry's PostgreSQL database, "
    "else monitoring.db under the home).",
)
@click.option(
    "--alert-rules",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="YAML file of alert rules (see `modelport alerts rules`).",
)
@click.option("--webhook", default=None, metavar="URL", help="Post alerts to this URL.")
@click.option(
    "--webhook-allow-host",
    multiple=True,
    metavar="HOST",
    help="A host the webhook may reach (repeatable; required with --webhook).",
)
@click.option(
    "--evaluate-interval",
    "evaluate_interval_s",
    default=15.0,
    show_default=True,
    type=click.FloatRange(0, 3600, min_open=True),
    help="Seconds between evaluations of drift, accuracy and alert rules.",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Log lines as text, or one JSON object each (with the request id).",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
    help="Level of modelport's own logs (other libraries log warnings and above).",
)
@click.option(
    "--access-log/--no-access-log",
    default=None,
    help="One log line per prediction request (default: on with --log-format json).",
)
@pass_app
def serve(
    app: AppContext,
    refs: tuple[str, ...],
    specs: tuple[Path, ...],
    rollouts: bool,
    rollout_interval_s: float,
    host: str,
    port: int,
    grpc_port: int | None,
    workers: int,
    threads: int | None,
    no_batching: bool,
    max_batch_size: int,
    max_batch_wait_ms: float,
    max_queue: int,
    max_body_bytes: int,
    default_timeout_s: float | None,
    poll_interval_s: float,
    grace_period_s: float,
    variant: str,
    no_monitoring: bool,
    no_prediction_log: bool,
    log_writer: LogWriter,
    log_sample_rate: float,
    redact: tuple[str, ...],
    log_url: str | None,
    alert_rules: Path | None,
    webhook: str | None,
    webhook_allow_host: tuple[str, ...],
    evaluate_interval_s: float,
    log_format: LogFormat,
    log_level: LogLevel,
    access_log: bool | None,
) -> None:
    """Serve REFS (NAME, NAME:VERSION, NAME@ALIAS) over Open Inference Protocol V2, MLflow
    /invocations and TensorFlow Serving REST, with monitoring: /metrics, the prediction log,
    ground-truth feedback, drift, accuracy and alerts (see /openapi.json).

    Endpoints recorded with `modelport deploy` (or --spec) for a served model are routed by
    their rollout: a new spec is picked up without a restart."""
    endpoints: list[str] = []
    served = list(refs)
    for spec_file in specs:
        spec = read_spec(spec_file)
        app.registry().deploy(spec)
        endpoints.append(spec.endpoint)
        if str(spec.baseline) not in served:
            served.append(str(spec.baseline))
    if not served:
        raise click.UsageError("name the model refs to serve (e.g. fraud@champion) or --spec FILE")
    refs = tuple(served)
    monitoring = MonitoringConfig(
        enabled=not no_monitoring,
        prediction_log=not no_prediction_log,
        log_writer=log_writer,
        log_sample_rate=log_sample_rate,
        redact=redact,
        log_url=log_url,
        alert_rules=str(alert_rules) if alert_rules is not None else None,
        webhook_url=webhook,
        webhook_allowed_hosts=webhook_allow_host,
        evaluate_interval_s=evaluate_interval_s,
    )
    if alert_rules is not None:
        load_rules(alert_rules)  # fail fast: a bad rule is reported with its place in the file
    if webhook is not None:
        parse_webhook_url(webhook, webhook_allow_host)
    config = ServeConfig(
        refs=refs,
        host=host,
        port=port,
        grpc_port=grpc_port,
        workers=workers,
        threads=threads,
        batching=not no_batching,
        max_batch_size=max_batch_size,
        max_batch_wait_ms=max_batch_wait_ms,
        max_queue=max_queue,
        max_body_bytes=max_body_bytes,
        default_timeout_s=default_timeout_s,
        poll_interval_s=poll_interval_s,
        grace_period_s=grace_period_s,
        variant=variant,
        monitoring=monitoring,
        log_format=log_format,
        log_level=log_level,
        access_log=log_format == "json" if access_log is None else access_log,
        endpoints=tuple(endpoints),
        rollouts=rollouts,
        rollout_interval_s=rollout_interval_s,
    )
    app.registry()  # fail fast (and migrate) before any worker starts
    app.close()

    def bound(actual: int) -> None:
        click.echo(
            f"modelport serving {', '.join(refs)} on http://{host}:{actual} "
            f"({workers} worker{'s' if workers > 1 else ''})"
            + (f", gRPC on {host}:{grpc_port}" if grpc_port is not None else "")
            + "; ready at /v2/health/ready",
            err=True,
        )

    configure_logging(config.log_format, config.log_level)
    run(functools.partial(build_app, app.settings, config), config, on_bound=bound)
