"""``modelport predict``: load a version (digest-verified) and score a file of inputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import numpy as np

from modelport.cli.context import AppContext, pass_app
from modelport.cli.output import echo_json
from modelport.registry.datasets import read_table

__all__ = ["predict"]


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if hasattr(value, "to_dict") and hasattr(value, "columns"):
        return value.to_dict(orient="records")
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


@click.command()
@click.argument("ref")
@click.option(
    "--input",
    "input_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="CSV/Parquet rows to score (default: the version's stored input example).",
)
@pass_app
def predict(app: AppContext, ref: str, input_path: Path | None) -> None:
    """Score rows with REF and print the outputs as JSON."""
    registry = app.registry()
    inputs = read_table(input_path) if input_path is not None else registry.input_example(ref)
    if inputs is None:
        raise click.UsageError(f"{ref} has no stored input example; give --input FILE")
    runtime = registry.load(ref)
    try:
        echo_json(_plain(runtime.predict(inputs)))
    finally:
        runtime.unload()
