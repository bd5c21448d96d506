"""``modelport feedback``: ground-truth labels for earlier predictions, joined by request id,
sent to a running server in chunks or written straight into the prediction log database."""

from __future__ import annotations

import csv
import functools
import io
import os
import urllib.parse
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import click
import orjson

from modelport.cli.context import AppContext, pass_app
from modelport.cli.monitor_common import (
    JSON_OPTION,
    TIMEOUT_OPTION,
    client,
    log_url_of,
    open_prediction_store,
    progress,
)
from modelport.cli.output import echo_json
from modelport.core.errors import ModelportError, NotFoundError
from modelport.core.names import validate_name
from modelport.monitoring.feedback import MAX_FEEDBACK_ITEMS, FeedbackItem, parse_feedback_csv
from modelport.monitoring.logstore import FeedbackResult

__all__ = ["MAX_BODY_BYTES", "MAX_FILE_LABELS", "chunked", "feedback"]

MAX_FILE_LABELS = 5_000_000
MAX_BODY_BYTES = 4 * 1024 * 1024  # half the server's default --max-body-bytes
SHOWN_IDS = 20


def _wire_label(item: FeedbackItem) -> Any:
    return list(item.label) if isinstance(item.label, tuple) else item.label


def _csv_label(item: FeedbackItem) -> str:
    if isinstance(item.label, tuple):
        return orjson.dumps(list(item.label)).decode()
    return str(item.label)


def _write_rejected(path: Path, items: Sequence[FeedbackItem]) -> None:
    """``id,label`` rows that ``parse_feedback_csv`` reads back; replaced atomically."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["id", "label"])
    writer.writerows([item.id, _csv_label(item)] for item in items)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(buffer.getvalue(), encoding="utf-8")
    os.replace(tmp, path)


def _server_result(document: Any, url: str) -> FeedbackResult:
    accepted, unknown = (
        (document.get("accepted"), document.get("unknown_ids"))
        if isinstance(document, dict)
        else (None, None)
    )
    if not isinstance(accepted, int) or not isinstance(unknown, list):
        raise ModelportError(f"{url} did not answer {{accepted, unknown_ids}}; is it modelport?")
    return FeedbackResult(accepted=accepted, unknown_ids=tuple(str(i) for i in unknown))


Sender = Callable[[list[FeedbackItem]], FeedbackResult]


def _sender(
    app: AppContext,
    stack: ExitStack,
    name: str,
    endpoint: str | None,
    log_url: str | None,
    timeout: float,
) -> tuple[Sender, str]:
    """How one chunk is stored (a POST to the server, or a transaction) and where to."""
    if endpoint is None:
        store = stack.enter_context(open_prediction_store(log_url_of(app, log_url)))
        return functools.partial(store.add_feedback, name), store.url
    api = client(endpoint, timeout)
    path = f"/v2/models/{urllib.parse.quote(name, safe='')}/feedback"

    def post(chunk: list[FeedbackItem]) -> FeedbackResult:
        body = [{"id": item.id, "label": _wire_label(item)} for item in chunk]
        return _server_result(api.post_json(path, body), api.url(path))

    return post, api.url(path)


def chunked(
    items: Sequence[FeedbackItem], size: int, max_bytes: int | None = None
) -> list[list[FeedbackItem]]:
    """Consecutive chunks of at most ``size`` items and (when given) about ``max_bytes`` of
    JSON each: the server refuses bodies over its --max-body-bytes (8 MiB by default)."""
    chunks: list[list[FeedbackItem]] = []
    current: list[FeedbackItem] = []
    weight = 2
    for item in items:
        cost = 0
        if max_bytes is not None:  # the item's JSON and its comma
            cost = len(orjson.dumps({"id": item.id, "label": _wire_label(item)})) + 1
        if current and (len(current) >= size or (max_bytes and weight + cost > max_bytes)):
            chunks.append(current)
            current, weight = [], 2
        current.append(item)
        weight += cost
    if current:
        chunks.append(current)
    return chunks


def _send(
    send: Sender, target: str, name: str, chunks: list[list[FeedbackItem]]
) -> tuple[int, list[str]]:
    """Send the chunks in order; the number stored and the unknown ids, in file order."""
    items = [item for chunk in chunks for item in chunk]
    accepted, unknown, done = 0, list[str](), 0
    for chunk in chunks:
        try:
            result = send(chunk)
        except ModelportError:
            if done:
                progress(
                    f"stopped after {done} of {len(items)} labels ({accepted} stored, "
                    f"{len(unknown)} unknown); the later labels were not stored"
                )
            raise
        accepted += result.accepted
        unknown.extend(result.unknown_ids)
        done += len(chunk)
        if len(chunks) > 1:
            progress(f"{name}: sent {done}/{len(items)} labels to {target}")
    return accepted, unknown


@click.command(short_help="Record ground-truth labels by request id.")
@click.argument("name")
@click.option(
    "--file",
    "path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="CSV with the header id,label: request ids (X-Request-ID) and their true labels.",
)
@click.option("--endpoint", default=None, help="Send to this server (http(s) URL).")
@click.option(
    "--log-url",
    default=None,
    help="Write to this prediction log database instead (default, without --endpoint: the "
    "server's, i.e. the registry's PostgreSQL database, else monitoring.db under --home).",
)
@click.option(
    "--chunk-size",
    type=click.IntRange(1, MAX_FEEDBACK_ITEMS),
    default=MAX_FEEDBACK_ITEMS,
    show_default=True,
    help="Labels per request or transaction.",
)
@click.option(
    "--rejected",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the rows whose ids are unknown to this CSV, to send them again later.",
)
@click.option("--allow-unknown", is_flag=True, help="Exit 0 even when some ids are unknown.")
@TIMEOUT_OPTION
@JSON_OPTION
@pass_app
def feedback(
    app: AppContext,
    name: str,
    path: Path,
    endpoint: str | None,
    log_url: str | None,
    chunk_size: int,
    rejected: Path | None,
    allow_unknown: bool,
    timeout: float,
    as_json: bool,
) -> None:
    """Record ground truth for earlier predictions of model NAME, joined by request id.

    Labels go to a running server with --endpoint URL, else straight into the prediction log
    database the server writes to (--log-url). A later label for an id replaces an earlier
    one. Ids with no logged prediction of NAME are listed and their labels are not stored: the
    exit code is then 3 (not found) unless --allow-unknown; --rejected FILE keeps those rows to
    send again later (recent predictions may not be logged yet).
    """
    if endpoint is not None and log_url is not None:
        raise click.UsageError("give --endpoint or --log-url, not both")
    validate_name(name)
    parsed = parse_feedback_csv(path.read_bytes(), max_items=MAX_FILE_LABELS, name=path.name)
    items = list({item.id: item for item in parsed}.values())  # a later label for an id wins
    chunks = chunked(items, chunk_size, MAX_BODY_BYTES if endpoint is not None else None)
    with ExitStack() as stack:
        send, target = _sender(app, stack, name, endpoint, log_url, timeout)
        accepted, unknown = _send(send, target, name, chunks)
    if rejected is not None and unknown:
        wanted = set(unknown)
        _write_rejected(rejected, [item for item in items if item.id in wanted])
    if as_json:
        echo_json(
            {"model": name, "labels": len(items), "accepted": accepted, "unknown_ids": unknown}
        )
    else:
        click.echo(f"{name}: {accepted} of {len(items)} labels stored")
        if unknown:
            click.echo(f"unknown ids ({len(unknown)}): {_shown(unknown)}")
        if rejected is not None and unknown:
            click.echo(f"their rows were written to {rejected}")
    if unknown and not allow_unknown:
        again = (
            f"send {rejected} again later"
            if rejected is not None
            else "keep them with --rejected FILE to send again later"
        )
        raise NotFoundError(
            f"{len(unknown)} of {len(items)} ids have no logged prediction of model {name!r}, so "
            f"their labels were not stored: {_shown(unknown)}. Check that they are the "
            f"X-Request-ID values of {name!r} predictions; predictions of the last seconds may "
            f"not be logged yet ({again}); --allow-unknown exits 0"
        )


def _shown(ids: Sequence[str]) -> str:
    head = ", ".join(ids[:SHOWN_IDS])
    return head + (f" … and {len(ids) - SHOWN_IDS} more" if len(ids) > SHOWN_IDS else "")
