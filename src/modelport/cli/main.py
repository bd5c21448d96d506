"""The ``modelport`` command: global options, error → exit code mapping, command groups."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import click
from pydantic import ValidationError

from modelport._version import __version__
from modelport.cli.context import AppContext
from modelport.cli.errors import exit_code
from modelport.cli.gate_commands import gates
from modelport.cli.key_commands import keys
from modelport.cli.monitor_alerts import alerts
from modelport.cli.monitor_commands import status
from modelport.cli.monitor_drift import drift
from modelport.cli.monitor_feedback import feedback
from modelport.cli.predict_command import predict
from modelport.cli.quickstart import quickstart
from modelport.cli.registry_commands import (
    alias,
    audit,
    data,
    env,
    models,
    register,
)
from modelport.cli.rollout_commands import deploy, deployments, rollout
from modelport.cli.serve_command import serve
from modelport.core.errors import EnvironmentMismatchWarning, ModelportError

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="modelport")
@click.option(
    "--home",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Embedded store directory (default ./.modelport, env MODELPORT_HOME).",
)
@click.option(
    "--registry-uri",
    default=None,
    help="Metadata database URL, e.g. postgresql+psycopg://user@host/db "
    "(env MODELPORT_REGISTRY_URI).",
)
@click.option(
    "--artifact-uri",
    default=None,
    help="Artifact store: a directory or s3://bucket/prefix (env MODELPORT_ARTIFACT_URI).",
)
@click.pass_context
def cli(
    ctx: click.Context, home: Path | None, registry_uri: str | None, artifact_uri: str | None
) -> None:
    """modelport: version, deploy and operate trained ML models."""
    app = AppContext.build(home, registry_uri, artifact_uri)
    ctx.obj = app
    ctx.call_on_close(app.close)


for command in (register, models, alias, audit, env, data, predict, serve, quickstart):
    cli.add_command(command)
for command in (status, drift, feedback, alerts):
    cli.add_command(command)
cli.add_command(gates)
cli.add_command(keys)
cli.add_command(deploy)
cli.add_command(rollout)
cli.add_command(deployments)


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: object = None,
    line: str | None = None,
) -> None:
    click.secho(f"warning: {message}", fg="yellow", err=True)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; ``ModelportError`` becomes a one-line message and a documented exit code."""
    warnings.simplefilter("always", EnvironmentMismatchWarning)
    warnings.showwarning = _show_warning
    try:
        result = cli.main(args=argv, prog_name="modelport", standalone_mode=False)
    except ModelportError as exc:
        click.secho(f"error: {exc}", fg="red", err=True)
        return exit_code(exc)
    except ValidationError as exc:  # settings built from options
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}" for e in exc.errors()
        )
        click.secho(f"error: invalid options: {problems}", fg="red", err=True)
        return 2
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    return result if isinstance(result, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
