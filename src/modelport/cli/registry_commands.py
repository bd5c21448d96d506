"""Registry commands: register, models, alias, audit, env, data."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import click

from modelport.api.fastpath import serving_summary
from modelport.cli.context import AppContext, pass_app
from modelport.cli.output import echo_json, format_table, short_time
from modelport.core.errors import InvalidInputError
from modelport.core.model import ModelVersion
from modelport.core.refs import ModelRef

__all__ = ["alias", "audit", "data", "env", "models", "register"]

JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")


def _pairs(values: Sequence[str], what: str) -> dict[str, str]:
    out = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidInputError(f"{what} {item!r} must look like key=value")
        out[key] = value
    return out


def _metrics(values: Sequence[str]) -> dict[str, float]:
    out = {}
    for key, value in _pairs(values, "--metric").items():
        try:
            out[key] = float(value)
        except ValueError as exc:
            raise InvalidInputError(
                f"--metric {key}={value[:30]!r}: value must be a number"
            ) from exc
    return out


def _confirm_types(types: Sequence[str]) -> bool:
    click.echo("The model needs these types outside skops' trusted defaults:", err=True)
    for name in types:
        click.echo(f"  {name}", err=True)
    return click.confirm("Trust them for this version?", default=False, err=True)


@click.command()
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--name", required=True, help="Registered model name.")
@click.option("--format", "fmt", default=None, help="Model format (detected when omitted).")
@click.option(
    "--input-example",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    help="CSV/Parquet file with a few input rows.",
)
@click.option(
    "--training-data",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    help="CSV/Parquet training data: versioned as a dataset, profiled for drift.",
)
@click.option("--validation-data", type=click.Path(exists=True, path_type=Path), default=None)
@click.option("--metric", "metrics", multiple=True, metavar="K=V", help="Metric (repeatable).")
@click.option("--param", "params", multiple=True, metavar="K=V", help="Param (repeatable).")
@click.option("--tag", "tags", multiple=True, metavar="K=V", help="Tag (repeatable).")
@click.option("--description", default="")
@click.option("--alias", default=None, help="Point this alias at the new version.")
@click.option(
    "--trust-pickle",
    is_flag=True,
    help="Allow a pickle/joblib artifact (it can run code: only for sources you trust).",
)
@click.option(
    "--trust-type",
    "trust_types",
    multiple=True,
    metavar="TYPE",
    help="Accept an extra skops type (repeatable).",
)
@click.option("--yes", is_flag=True, help="Do not ask; refuse types not given with --trust-type.")
@click.option(
    "--fast-path/--no-fast-path",
    default=True,
    show_default=True,
    help="Build and verify the ONNX variant of a scikit-learn model.",
)
@pass_app
def register(
    app: AppContext,
    path: Path,
    name: str,
    fmt: str | None,
    input_example: Path | None,
    training_data: Path | None,
    validation_data: Path | None,
    metrics: tuple[str, ...],
    params: tuple[str, ...],
    tags: tuple[str, ...],
    description: str,
    alias: str | None,
    trust_pickle: bool,
    trust_types: tuple[str, ...],
    yes: bool,
    fast_path: bool,
) -> None:
    """Register a model file or directory as a new immutable version; prints NAME:VERSION."""
    trusted: object = list(trust_types)
    interactive = not yes and sys.stdin is not None and sys.stdin.isatty()
    if interactive:
        given = set(trust_types)

        def trusted_approver(types: Sequence[str]) -> bool:
            return set(types) <= given or _confirm_types([t for t in types if t not in given])

        trusted = trusted_approver
    version = app.registry().register(
        path,
        name=name,
        format=fmt,
        input_example=input_example,
        training_data=training_data,
        validation_data=validation_data,
        metrics=_metrics(metrics),
        params=_pairs(params, "--param"),
        tags=_pairs(tags, "--tag"),
        description=description,
        alias=alias,
        trust_pickle=trust_pickle,
        trusted_types=trusted,  # type: ignore[arg-type]
        fast_path=fast_path,
    )
    click.echo(version.ref)


@click.group()
def models() -> None:
    """List and inspect registered models."""


@models.command("list")
@JSON_OPTION
@pass_app
def models_list(app: AppContext, as_json: bool) -> None:
    """Registered models with their latest version and aliases."""
    items = app.registry().list_models()
    if as_json:
        echo_json([m.to_dict() for m in items])
        return
    rows = [
        [m.name, m.latest_version, m.aliases, short_time(m.created_at.isoformat()), m.description]
        for m in items
    ]
    click.echo(format_table(["name", "latest", "aliases", "created", "description"], rows))


def _show_version(v: ModelVersion) -> None:
    click.echo(f"{v.ref}  ({v.format}, {v.status})")
    click.echo(f"  digest       {v.digest}")
    click.echo(f"  aliases      {', '.join(v.aliases) or '-'}")
    click.echo(f"  created      {short_time(v.created_at.isoformat())} by {v.created_by}")
    if v.description:
        click.echo(f"  description  {v.description}")
    click.echo(f"  files        {len(v.manifest.entries)} ({v.manifest.total_size} bytes)")
    if v.signature is not None:
        ins = ", ".join(f"{f.name}:{f.dtype}" for f in v.signature.inputs[:8])
        more = f" (+{len(v.signature.inputs) - 8} more)" if len(v.signature.inputs) > 8 else ""
        click.echo(f"  inputs       {v.signature.kind}: {ins}{more}")
        outs = ", ".join(f"{f.name}:{f.dtype}{list(f.shape or [])}" for f in v.signature.outputs)
        click.echo(f"  outputs      {outs or '-'}")
    click.echo(f"  example      {'stored' if v.input_example is not None else '-'}")
    metrics = ", ".join(f"{k}={val:.4g}" for k, val in sorted(v.metrics.items()))
    click.echo(f"  metrics      {metrics or '-'}")
    if v.params:
        click.echo(f"  params       {', '.join(f'{k}={p}' for k, p in sorted(v.params.items()))}")
    if v.tags:
        click.echo(f"  tags         {', '.join(f'{k}={t}' for k, t in sorted(v.tags.items()))}")
    lineage = v.lineage.to_dict()
    click.echo(f"  lineage      {', '.join(f'{k}={x}' for k, x in lineage.items()) or '-'}")
    for ds in v.datasets:
        click.echo(f"  dataset      {ds.role}: {ds.name}:{ds.version} ({ds.digest[:19]}…)")
    click.echo(f"  profile      {'captured' if v.profile is not None else '-'}")
    if v.trusted_types:
        click.echo(f"  trusted      {', '.join(v.trusted_types)}")
    if v.environment is not None:
        frameworks = [f"{p.name}=={p.version}" for p in v.environment.packages if p.framework]
        click.echo(
            f"  environment  python {v.environment.python}; {', '.join(frameworks)} "
            f"(+{len(v.environment.packages) - len(frameworks)} pinned dependencies)"
        )
    click.echo(f"  serving      {serving_summary(v)['summary']}")


@models.command("show")
@click.argument("ref")
@JSON_OPTION
@pass_app
def models_show(app: AppContext, ref: str, as_json: bool) -> None:
    """One version in detail (REF: NAME, NAME:VERSION or NAME@ALIAS); NAME alone lists versions."""
    registry = app.registry()
    parsed = ModelRef.parse(ref)
    if parsed.is_latest:
        versions = registry.versions(parsed.name)
        if as_json:
            echo_json([v.to_dict() for v in versions])
            return
        rows = [
            [
                v.number,
                v.format,
                v.aliases,
                v.metrics,
                v.digest[:19] + "…",
                short_time(v.created_at.isoformat()),
                v.created_by,
            ]
            for v in versions
        ]
        click.echo(
            format_table(
                ["version", "format", "aliases", "metrics", "digest", "created", "by"], rows
            )
        )
        return
    version = registry.get(parsed)
    if as_json:
        echo_json({**version.to_dict(), "serving": serving_summary(version)})
        return
    _show_version(version)


@models.command("fastpath")
@click.argument("ref")
@JSON_OPTION
@pass_app
def models_fastpath(app: AppContext, ref: str, as_json: bool) -> int:
    """Build (again) and verify the ONNX fast path of a scikit-learn version; exit 1 if it
    failed (the version keeps serving through scikit-learn)."""
    version = app.registry().build_fast_path(ref)
    variant = version.variant("onnx")
    if as_json:
        echo_json({"ref": version.ref, "variant": variant.to_dict() if variant else None})
    else:
        click.echo(f"{version.ref}: {serving_summary(version)['summary']}")
    return 0 if variant is not None and variant.verified else 1


@click.group()
def alias() -> None:
    """Move aliases (NAME@ALIAS) and read their history."""


@alias.command("set")
@click.argument("name")
@click.argument("alias_name", metavar="ALIAS")
@click.argument("version", type=int)
@click.option("--reason", default="", help="Why, recorded in the history.")
@pass_app
def alias_set(app: AppContext, name: str, alias_name: str, version: int, reason: str) -> None:
    """Point NAME@ALIAS at VERSION."""
    move = app.registry().set_alias(name, alias_name, version, reason)
    click.echo(f"{name}@{alias_name}: {move.from_version or '-'} -> {move.to_version}")


@alias.command("delete")
@click.argument("name")
@click.argument("alias_name", metavar="ALIAS")
@click.option("--reason", default="")
@pass_app
def alias_delete(app: AppContext, name: str, alias_name: str, reason: str) -> None:
    """Remove NAME@ALIAS (the history keeps the removal)."""
    move = app.registry().delete_alias(name, alias_name, reason)
    click.echo(f"{name}@{alias_name}: {move.from_version} -> removed")


@alias.command("history")
@click.argument("name")
@click.argument("alias_name", metavar="ALIAS")
@JSON_OPTION
@pass_app
def alias_history(app: AppContext, name: str, alias_name: str, as_json: bool) -> None:
    """Every move of NAME@ALIAS: who, when, from, to, why."""
    moves = app.registry().alias_history(name, alias_name)
    if as_json:
        echo_json([m.to_dict() for m in moves])
        return
    rows = [
        [m.seq, short_time(m.at.isoformat()), m.actor, m.from_version, m.to_version, m.reason]
        for m in moves
    ]
    click.echo(format_table(["seq", "at", "actor", "from", "to", "reason"], rows))


def _when(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise InvalidInputError(
            f"{option} {value[:40]!r} is not an ISO date/time (e.g. 2026-11-29T10:00)"
        ) from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@click.command()
@click.option("--model", default=None, help="Only events about this model or dataset.")
@click.option("--actor", default=None)
@click.option("--action", default=None, help="e.g. version.register, alias.set")
@click.option("--since", default=None, help="ISO date/time (UTC when no offset).")
@click.option("--until", default=None)
@click.option("--limit", default=1000, show_default=True, type=click.IntRange(1, 100_000))
@JSON_OPTION
@pass_app
def audit(
    app: AppContext,
    model: str | None,
    actor: str | None,
    action: str | None,
    since: str | None,
    until: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """The append-only audit log of every mutating action."""
    events = app.registry().audit(
        model=model,
        actor=actor,
        action=action,
        since=_when(since, "--since"),
        until=_when(until, "--until"),
        limit=limit,
    )
    if as_json:
        echo_json([e.to_dict() for e in events])
        return
    rows = [
        [
            e.id,
            short_time(e.at.isoformat()),
            e.actor,
            e.action,
            f"{e.object_name}:{e.version}" if e.version else e.object_name,
            e.details,
        ]
        for e in events
    ]
    click.echo(format_table(["id", "at", "actor", "action", "object", "details"], rows))


@click.group()
def env() -> None:
    """Environment locks."""


@env.command("check")
@click.argument("ref")
@JSON_OPTION
@pass_app
def env_check(app: AppContext, ref: str, as_json: bool) -> int:
    """Compare REF's environment lock with this interpreter; exit 1 on a high-severity mismatch."""
    mismatches = app.registry().env_check(ref)
    if as_json:
        echo_json([m.to_dict() for m in mismatches])
    elif not mismatches:
        click.echo(f"{ref}: this interpreter matches the environment lock")
    else:
        rows = [
            [m.severity, m.package, m.locked, m.current or "not installed", m.reason]
            for m in mismatches
        ]
        click.echo(format_table(["severity", "package", "locked", "current", "reason"], rows))
    return 1 if any(m.severity == "high" for m in mismatches) else 0


@click.group()
def data() -> None:
    """Versioned datasets (CSV or Parquet)."""


@data.command("register")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", required=True)
@click.option("--description", default="")
@pass_app
def data_register(app: AppContext, path: Path, name: str, description: str) -> None:
    """Store a dataset file as a content-addressed version; prints NAME:VERSION."""
    dataset = app.registry().register_dataset(path, name, description)
    click.echo(dataset.ref)


@data.command("list")
@click.argument("name", required=False)
@JSON_OPTION
@pass_app
def data_list(app: AppContext, name: str | None, as_json: bool) -> None:
    """Dataset versions (all, or of NAME)."""
    items = app.registry().datasets(name)
    if as_json:
        echo_json([d.to_dict() for d in items])
        return
    rows = [
        [
            d.ref,
            d.format,
            d.rows,
            len(d.schema),
            d.digest[:19] + "…",
            short_time(d.created_at.isoformat()),
        ]
        for d in items
    ]
    click.echo(format_table(["dataset", "format", "rows", "columns", "digest", "created"], rows))


@data.command("show")
@click.argument("ref")
@JSON_OPTION
@pass_app
def data_show(app: AppContext, ref: str, as_json: bool) -> None:
    """A dataset version with its schema and profile (REF: NAME or NAME:VERSION)."""
    name, _, number = ref.partition(":")
    if number and not number.isdigit():
        raise InvalidInputError(f"dataset ref {ref[:60]!r} must be NAME or NAME:VERSION")
    dataset = app.registry().get_dataset(name, int(number) if number else None)
    if as_json:
        echo_json(dataset.to_dict(with_profile=True))
        return
    click.echo(f"{dataset.ref}  ({dataset.format}, {dataset.rows} rows)  {dataset.digest}")
    rows = []
    for feature in dataset.profile.features:
        if feature.kind == "numeric":
            summary = (
                f"mean={feature.mean:.4g} std={feature.std:.4g}"
                if feature.mean is not None
                else "-"
            )
        else:
            top = sorted(feature.categories.items(), key=lambda kv: -kv[1])[:3]
            summary = ", ".join(f"{k}={v:.0%}" for k, v in top)
        rows.append(
            [feature.name, dataset.schema.get(feature.name), feature.kind, feature.missing, summary]
        )
    click.echo(format_table(["column", "dtype", "kind", "missing", "summary"], rows))
