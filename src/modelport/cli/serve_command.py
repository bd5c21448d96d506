"""``modelport serve``: run the data plane for one or more model refs."""

from __future__ import annotations

import functools

import click

from modelport.api.serve import build_app
from modelport.cli.context import AppContext, pass_app
from modelport.serving.config import ServeConfig
from modelport.serving.server import run

__all__ = ["serve"]


@click.command()
@click.argument("refs", nargs=-1, required=True)
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
@pass_app
def serve(
    app: AppContext,
    refs: tuple[str, ...],
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
) -> None:
    """Serve REFS (NAME, NAME:VERSION, NAME@ALIAS) over Open Inference Protocol V2, MLflow
    /invocations and TensorFlow Serving REST."""
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

    run(functools.partial(build_app, app.settings, config), config, on_bound=bound)
