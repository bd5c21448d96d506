"""``modelport keys create|list|revoke``: API keys, shown once, stored as digests."""

from __future__ import annotations

import click

from modelport.api.keys import create_key, list_keys, revoke_key
from modelport.cli.context import AppContext, pass_app
from modelport.cli.output import echo_json, format_table, short_time
from modelport.cli.registry_commands import JSON_OPTION
from modelport.core.auth import ApiKeyRecord

__all__ = ["keys"]


@click.group()
def keys() -> None:
    """API keys: scopes predict:<endpoint> (or predict:*), read, deploy, approve, admin."""


@keys.command("create")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    required=True,
    help="What the key may do (repeatable): predict:<endpoint>, predict:*, read, deploy, "
    "approve, admin.",
)
@click.option("--name", default=None, help="A name for the key (default: key-<id>).")
@JSON_OPTION
@pass_app
def keys_create(app: AppContext, scopes: tuple[str, ...], name: str | None, as_json: bool) -> None:
    """Make a key and print it once: only its SHA-256 digest is stored."""
    record, token = create_key(app.registry(), scopes, name)
    if as_json:
        echo_json({**record.to_dict(), "key": token})
        return
    click.echo(f"{record.name}: created key {record.id} with {', '.join(record.scopes)}")
    click.echo(token)
    click.echo("this is the only time the key is shown; store it now (only its digest is kept)")


def _rows(records: list[ApiKeyRecord]) -> list[list[str]]:
    return [
        [
            r.id,
            r.name,
            " ".join(r.scopes),
            short_time(r.created_at.isoformat()),
            r.created_by,
            "-" if r.revoked_at is None else short_time(r.revoked_at.isoformat()),
        ]
        for r in records
    ]


@keys.command("list")
@click.option("--all", "include_revoked", is_flag=True, help="Include revoked keys.")
@JSON_OPTION
@pass_app
def keys_list(app: AppContext, include_revoked: bool, as_json: bool) -> None:
    """The keys (never their secrets), oldest first."""
    records = list_keys(app.registry(), include_revoked=include_revoked)
    if as_json:
        echo_json([r.to_dict() for r in records])
        return
    if not records:
        click.echo("no API keys; make one with `modelport keys create --scope read`")
        return
    headers = ["id", "name", "scopes", "created", "by", "revoked"]
    click.echo(format_table(headers, _rows(records)))


@keys.command("revoke")
@click.argument("key")
@JSON_OPTION
@pass_app
def keys_revoke(app: AppContext, key: str, as_json: bool) -> None:
    """Revoke KEY (its id or name); requests made with it are refused from then on."""
    record = revoke_key(app.registry(), key)
    if as_json:
        echo_json(record.to_dict())
        return
    click.echo(f"{record.name}: key {record.id} revoked")
