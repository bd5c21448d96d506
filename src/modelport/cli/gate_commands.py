"""``modelport test``: the smoke and regression gates, usable in any CI pipeline.

Exit 0 when the gate passes, 1 when it fails, and the documented error codes otherwise (2 for
bad input, 3 for something not found...). Each run stores its report with the candidate
version unless ``--no-store``; ``modelport test reports REF`` lists them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from modelport.api.gates import (
    DEFAULT_BUDGET_MS,
    DEFAULT_REPEATS,
    LATENCY_SAMPLES,
    gate_reports,
    read_golden,
    run_regression,
    run_smoke,
)
from modelport.cli.context import AppContext, pass_app
from modelport.cli.output import echo_json, format_table, short_time
from modelport.cli.registry_commands import JSON_OPTION
from modelport.core.errors import InvalidInputError
from modelport.registry.datasets import read_table
from modelport.rollout.gate_report import REPORT_HEADERS, GateReport
from modelport.rollout.gates import Tolerance

__all__ = ["gates"]

STORE_OPTION = click.option(
    "--no-store", is_flag=True, help="Do not store the report with the version."
)


@click.group("test")
def gates() -> None:
    """Gates a version must pass before it takes traffic (exit 1 when one fails)."""


@gates.command("smoke")
@click.argument("ref")
@click.option(
    "--golden",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Golden requests: CSV/Parquet (one request per row) or JSON (encoded examples).",
)
@click.option(
    "--budget-ms",
    type=float,
    default=DEFAULT_BUDGET_MS,
    show_default=True,
    help="Latency budget every call must meet.",
)
@click.option(
    "--repeats",
    type=click.IntRange(1, 1000),
    default=DEFAULT_REPEATS,
    show_default=True,
    help="How many times each request is sent.",
)
@STORE_OPTION
@JSON_OPTION
@pass_app
def smoke(
    app: AppContext,
    ref: str,
    golden: Path | None,
    budget_ms: float,
    repeats: int,
    no_store: bool,
    as_json: bool,
) -> int:
    """REF answers its input example (and golden requests) with valid outputs in budget."""
    requests = read_golden(golden) if golden is not None else None
    report = run_smoke(
        app.registry(),
        ref,
        requests,
        budget_ms,
        repeats=repeats,
        golden_label=f"file {golden.name}" if golden is not None else None,
        store=not no_store,
    )
    _show(report, as_json)
    return 0 if report.passed else 1


@gates.command("regression")
@click.argument("candidate")
@click.option("--baseline", required=True, help="The version to compare with (REF).")
@click.option(
    "--data",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="CSV/Parquet rows to compare on.",
)
@click.option("--dataset", default=None, metavar="NAME:VERSION", help="A registered dataset.")
@click.option("--label", "label_column", default=None, help="Column holding the true labels.")
@click.option(
    "--tolerance",
    "tolerances",
    multiple=True,
    metavar="METRIC=VALUE",
    help="How much worse a metric may get: accuracy=0.01, mae=5% (repeatable).",
)
@click.option(
    "--min-agreement",
    type=float,
    default=None,
    help="Minimum share of rows where both predict alike (default 0.9 without --label).",
)
@click.option("--p95-budget-ms", type=float, default=None, help="Candidate p95 latency budget.")
@click.option(
    "--allow-breaking-schema", is_flag=True, help="Accept input changes that break clients."
)
@click.option(
    "--task",
    type=click.Choice(["auto", "classification", "regression"]),
    default="auto",
    show_default=True,
)
@click.option(
    "--latency-samples",
    type=click.IntRange(1, 10_000),
    default=LATENCY_SAMPLES,
    show_default=True,
    help="Single-row calls timed per version.",
)
@STORE_OPTION
@JSON_OPTION
@pass_app
def regression(
    app: AppContext,
    candidate: str,
    baseline: str,
    data: Path | None,
    dataset: str | None,
    label_column: str | None,
    tolerances: tuple[str, ...],
    min_agreement: float | None,
    p95_budget_ms: float | None,
    allow_breaking_schema: bool,
    task: str,
    latency_samples: int,
    no_store: bool,
    as_json: bool,
) -> int:
    """CANDIDATE against --baseline on the same rows: metric deltas, agreement, p95, schema."""
    if data is not None and dataset is not None:
        raise InvalidInputError("give either --data FILE or --dataset NAME:VERSION, not both")
    rows: Any = read_table(data) if data is not None else dataset
    report = run_regression(
        app.registry(),
        candidate,
        baseline,
        rows,
        label_column,
        tolerances=_tolerances(tolerances),
        min_agreement=min_agreement,
        p95_budget_ms=p95_budget_ms,
        allow_breaking_schema=allow_breaking_schema,
        task=task,  # type: ignore[arg-type]
        latency_samples=latency_samples,
        data_label=f"file {data.name}" if data is not None else None,
        store=not no_store,
    )
    _show(report, as_json)
    return 0 if report.passed else 1


@gates.command("reports")
@click.argument("ref")
@click.option("--gate", default=None, help="Only reports of this gate (smoke, regression...).")
@JSON_OPTION
@pass_app
def reports(app: AppContext, ref: str, gate: str | None, as_json: bool) -> None:
    """Stored gate reports of REF (NAME: every version), oldest first."""
    records = gate_reports(app.registry(), ref, gate)
    if as_json:
        echo_json([r.to_dict() for r in records])
        return
    rows = [
        [
            r.id,
            r.ref,
            r.gate,
            "passed" if r.passed else "FAILED",
            r.report.get("baseline"),
            [c.get("name") for c in r.report.get("checks", []) if not c.get("passed")],
            short_time(r.created_at.isoformat()),
            r.created_by,
        ]
        for r in records
    ]
    headers = ["id", "version", "gate", "result", "baseline", "failed", "at", "by"]
    click.echo(format_table(headers, rows))


def _tolerances(values: Sequence[str]) -> dict[str, Tolerance]:
    out = {}
    for item in values:
        metric, sep, value = item.partition("=")
        if not sep or not metric.strip():
            raise InvalidInputError(
                f"--tolerance {item[:40]!r} must look like METRIC=VALUE, e.g. accuracy=0.01"
            )
        out[metric.strip()] = Tolerance.parse(value)
    return out


def _show(report: GateReport, as_json: bool) -> None:
    if as_json:
        echo_json(report.to_dict())
        return
    click.echo(report.summary())
    facts = [
        f"{key} {report.info[key]}"
        for key in ("data", "task", "rows", "requests", "repeats", "golden_used")
        if report.info.get(key) is not None
    ]
    if facts:
        click.echo("  " + ", ".join(facts))
    click.echo()
    click.echo(format_table(REPORT_HEADERS, report.rows(), max_width=100))
    changes = (report.info.get("schema") or {}).get("changes") or []
    if changes:
        click.echo()
        rows = [[c["severity"], c["kind"], c["field"], c["detail"]] for c in changes]
        click.echo(format_table(["severity", "change", "field", "detail"], rows, max_width=100))
    schema = report.check("schema")
    if schema is not None and not schema.passed:
        click.echo("\nhint: --allow-breaking-schema accepts these changes (clients must adapt)")
