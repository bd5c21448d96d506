"""``modelport drift``: per-feature drift of production data against the training profile.

Two modes: an http(s) ENDPOINT asks the running server (``--model``, ``--version``); a registry
ref (``fraud@champion``, ``fraud:3``) works offline on the version's reference profile and the
inputs logged for that version (or a ``--data`` sample).
"""

from __future__ import annotations

import urllib.parse
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from modelport.cli.context import AppContext, pass_app
from modelport.cli.monitor_common import (
    JSON_OPTION,
    TIMEOUT_OPTION,
    client,
    log_url_of,
    open_prediction_store,
    progress,
    verdict_text,
)
from modelport.cli.output import echo_json, format_table
from modelport.core.errors import InvalidInputError, ModelportError, NotFoundError
from modelport.core.model import ModelVersion
from modelport.core.names import validate_name
from modelport.core.profile import DatasetProfile
from modelport.core.refs import ModelRef
from modelport.monitoring.drift import DriftThresholds, FeatureDrift, dataset_drift
from modelport.registry.datasets import read_table

__all__ = ["DEFAULT_OFFLINE_WINDOW_S", "drift", "drift_document"]

DEFAULT_OFFLINE_WINDOW_S = 3600
MAX_ROWS = 1_000_000
_DRIFTED = "drift"
_HEADERS = ("feature", "kind", "statistic", "score", "p-value", "verdict")


def _feature_dict(d: FeatureDrift) -> dict[str, Any]:
    """One feature in the server's drift wire shape (plus the test's own statistic)."""
    return {
        "feature": d.name,
        "kind": d.kind,
        "statistic": "psi",
        "score": d.psi,
        "p_value": d.p_value,
        "verdict": verdict_text(d.verdict),  # "insufficient data", as the server says
        "reason": d.reason,
        "test": "ks" if d.kind == "numeric" else "chi2",
        "test_statistic": d.ks_stat if d.kind == "numeric" else d.chi2,
        "n": d.n,
        "missing": d.missing,
    }


def _profile(version: ModelVersion) -> DatasetProfile:
    if version.profile is None:
        raise NotFoundError(
            f"{version.ref} has no reference profile to compare with: it was registered without "
            "training data; register a new version with --training-data FILE"
        )
    return version.profile


def drift_document(
    version: ModelVersion,
    frame: Any,
    thresholds: DriftThresholds,
    window_s: int | None,
    source: str,
) -> dict[str, Any]:
    """The drift report of ``frame`` against the reference profile of ``version``."""
    results = dataset_drift(_profile(version), frame, thresholds)
    return {
        "model": version.name,
        "version": str(version.number),
        "window_s": window_s,
        "rows": len(frame),
        "source": source,
        "features": [_feature_dict(d) for d in results],
        "prediction": None,
    }


def _number(value: Any, spec: str) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "-"
    return format(value, spec)


def _row(f: dict[str, Any], name: str | None = None) -> list[str]:
    return [
        name or str(f.get("feature", "-")),
        str(f.get("kind") or "-"),
        str(f.get("statistic") or "-"),
        _number(f.get("score"), ".3g"),
        _number(f.get("p_value"), ".2g"),
        verdict_text(f.get("verdict")),
    ]


def _render(document: dict[str, Any], target: str) -> None:
    features = [f for f in document.get("features") or [] if isinstance(f, dict)]
    window = document.get("window_s")
    scope = f"the last {window:g}s" if isinstance(window, int | float) else document.get("source")
    click.echo(
        f"{document.get('model', '-')}:{document.get('version', '-')} against its training "
        f"profile: {document.get('rows', '-')} rows from {scope or target}"
    )
    rows = [_row(f) for f in features]
    prediction = document.get("prediction")
    if isinstance(prediction, dict):
        rows.append(_row(prediction, "(prediction)"))
    click.echo(format_table(_HEADERS, rows))
    drifted = [f for f in features if f.get("verdict") == _DRIFTED]
    thin = [f for f in features if verdict_text(f.get("verdict")) == "insufficient data"]
    summary = f"{len(drifted)} of {len(features)} features drifted"
    if thin:
        summary += f" ({len(thin)} with insufficient data)"
    if isinstance(prediction, dict):
        summary += f"; predictions: {verdict_text(prediction.get('verdict'))}"
    click.echo(summary)
    for f in drifted:
        click.echo(f"  {f.get('feature')}: {f.get('reason') or '-'}")


def _offline_frame(
    app: AppContext,
    version: ModelVersion,
    data: Path | None,
    log_url: str | None,
    window_s: int,
    limit: int,
) -> tuple[Any, str]:
    if data is not None:
        progress(f"reading {data}")
        return read_table(data), str(data)
    with open_prediction_store(log_url_of(app, log_url)) as store:
        progress(
            f"reading up to {limit} inputs of {version.ref} logged in the last {window_s:g}s "
            f"from {store.url}"
        )
        since = datetime.now(UTC) - timedelta(seconds=window_s)
        frame = store.recent_inputs(version.name, str(version.number), since=since, limit=limit)
        if len(frame) == 0:
            raise NotFoundError(
                f"no inputs of {version.ref} were logged in the last {window_s:g}s in "
                f"{store.url}; widen --window, check --log-url (and that the server logs "
                "predictions), or give a production sample with --data FILE"
            )
        return frame, store.url


@click.command(short_help="Per-feature drift against the training profile.")
@click.argument("target", metavar="REF_OR_ENDPOINT")
@click.option("--model", default=None, help="Model name (with an ENDPOINT).")
@click.option("--version", type=click.IntRange(min=1), default=None, help="Version number.")
@click.option(
    "--window",
    "window_s",
    type=click.IntRange(min=1),
    default=None,
    help=f"Seconds of recent traffic (default: the server's; offline "
    f"{DEFAULT_OFFLINE_WINDOW_S:g}).",
)
@click.option(
    "--data",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Offline: a CSV/Parquet production sample instead of the logged inputs.",
)
@click.option(
    "--log-url",
    default=None,
    help="Offline: the prediction log database (default: the server's, i.e. the registry's "
    "PostgreSQL database, else monitoring.db under --home).",
)
@click.option(
    "--limit",
    type=click.IntRange(1, MAX_ROWS),
    default=10_000,
    show_default=True,
    help="Offline: at most this many of the newest logged rows.",
)
@click.option("--psi", "psi", type=float, default=None, help="Offline: PSI threshold (0.2).")
@click.option("--p-value", type=float, default=None, help="Offline: significance (0.01).")
@click.option("--min-samples", type=int, default=None, help="Offline: values needed (30).")
@click.option("--fail-on-drift", is_flag=True, help="Exit 1 when any feature drifted (for CI).")
@TIMEOUT_OPTION
@JSON_OPTION
@pass_app
@click.pass_context
def drift(
    ctx: click.Context,
    app: AppContext,
    target: str,
    model: str | None,
    version: int | None,
    window_s: int | None,
    data: Path | None,
    log_url: str | None,
    limit: int,
    psi: float | None,
    p_value: float | None,
    min_samples: int | None,
    fail_on_drift: bool,
    timeout: float,
    as_json: bool,
) -> None:
    """Drift of each feature against the training profile: FEATURE, KIND, STATISTIC, SCORE
    (PSI), P-VALUE (KS or chi-squared), VERDICT, and a summary line.

    \b
    modelport drift http://127.0.0.1:8080 --model fraud [--version 3]   ask the server
    modelport drift fraud@champion                  logged inputs of the last hour
    modelport drift fraud:3 --data sample.parquet   a production sample

    A feature drifts when PSI >= --psi and the test's p-value < --p-value. Exit 0 whatever
    the verdicts (the table is the result); with --fail-on-drift exit 1 when one drifted.
    """
    scheme = urllib.parse.urlsplit(target).scheme.lower()
    offline_only = {
        "--data": data,
        "--log-url": log_url,
        "--psi": psi,
        "--p-value": p_value,
        "--min-samples": min_samples,
    }
    if scheme in ("http", "https"):
        given = [name for name, value in offline_only.items() if value is not None]
        if given:
            raise click.UsageError(f"{', '.join(given)} work offline (with a REF), not with a URL")
        if model is None:
            raise click.UsageError("with an ENDPOINT, name the model with --model NAME")
        api = client(target, timeout)
        path = f"/v2/models/{urllib.parse.quote(validate_name(model), safe='')}/drift"
        document = api.get_json(path, {"version": version, "window_s": window_s})
        if not isinstance(document, dict) or not isinstance(document.get("features"), list):
            raise ModelportError(f"{api.url(path)} did not answer a drift report")
    elif "://" in target:
        raise InvalidInputError(f"{target[:60]!r}: endpoints are http(s) URLs")
    else:
        if model is not None or version is not None:
            raise click.UsageError("--model/--version go with an ENDPOINT; a REF names both")
        if data is not None and (log_url is not None or window_s is not None):
            raise click.UsageError("--data replaces the logged inputs: drop --log-url/--window")
        base = DriftThresholds()
        thresholds = DriftThresholds(
            psi=base.psi if psi is None else psi,
            p_value=base.p_value if p_value is None else p_value,
            min_samples=base.min_samples if min_samples is None else min_samples,
        )
        mv = app.registry().get(ModelRef.parse(target))
        _profile(mv)  # before reading any data
        window = window_s or DEFAULT_OFFLINE_WINDOW_S
        frame, source = _offline_frame(app, mv, data, log_url, window, limit)
        if len(frame) == 0:
            raise InvalidInputError(f"{source} has no rows; give a sample with data rows")
        progress(f"comparing {len(frame)} rows with the training profile of {mv.ref}")
        document = drift_document(mv, frame, thresholds, None if data else window, source)
    if as_json:
        echo_json(document)
    else:
        _render(document, target)
    prediction = document.get("prediction")
    flagged = any(
        isinstance(f, dict) and f.get("verdict") == _DRIFTED for f in document["features"]
    ) or (isinstance(prediction, dict) and prediction.get("verdict") == _DRIFTED)
    if fail_on_drift and flagged:
        ctx.exit(1)
