"""Ground-truth feedback as it arrives: parsing and validation only (no I/O).

Two wire forms give the true label of earlier predictions, named by their request id:

- JSON: ``{"id": "r-1", "label": 1}`` or a list of such objects (at most ``MAX_FEEDBACK_ITEMS``
  per call). A label is a number, a string or a boolean, or a list of them with one label per
  row of a multi-row request.
- CSV: a header ``id,label`` then one line per request. A label cell is read as a whole number,
  a decimal number (``2.50``, ``1e-3``) or else a string (``"007"``, ``"cat"``); a cell holding
  a JSON array (``"[1, 0, 1]"``) is a list label.

Ids are strings of 1 to ``MAX_ID_LENGTH`` characters without control characters. When one call
names an id twice the later label wins, as it does across calls. Errors name the item (JSON) or
the line (CSV) and never repeat a label or an id: feedback is user data.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from modelport.core.errors import InvalidInputError, RequestTooLargeError

__all__ = [
    "MAX_FEEDBACK_ITEMS",
    "MAX_ID_LENGTH",
    "MAX_LABEL_LENGTH",
    "FeedbackItem",
    "FeedbackLabel",
    "parse_feedback_csv",
    "parse_feedback_json",
]

MAX_FEEDBACK_ITEMS = 10_000
MAX_ID_LENGTH = 256
MAX_LABEL_LENGTH = 1024  # characters of one string label

Label = int | float | str | bool
FeedbackLabel = Label | tuple[Label, ...]

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_INTEGER = re.compile(r"[+-]?(?:0|[1-9][0-9]*)")
_DECIMAL = re.compile(r"[+-]?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")


@dataclass(frozen=True, slots=True)
class FeedbackItem:
    """The true label of the request ``id``: one label, or a tuple with one label per row."""

    id: str
    label: FeedbackLabel


# -- shared checks ------------------------------------------------------------------------------
def _check_id(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise InvalidInputError(
            f"{where}: the id must be a string (the request id of the prediction), "
            f"got {type(value).__name__}"
        )
    if not value:
        raise InvalidInputError(f"{where}: the id is empty; give the request id of the prediction")
    if len(value) > MAX_ID_LENGTH:
        raise InvalidInputError(
            f"{where}: the id has {len(value)} characters; request ids have at most {MAX_ID_LENGTH}"
        )
    if _CONTROL.search(value):
        raise InvalidInputError(f"{where}: the id contains control characters; remove them")
    return value


def _check_scalar(value: Any, where: str) -> Label:
    if value is None:
        raise InvalidInputError(f"{where}: the label is missing (null); give the true label")
    if isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInputError(f"{where}: the label is not a finite number")
        return value
    if isinstance(value, str):
        if not value.strip():
            raise InvalidInputError(f"{where}: the label is empty; give the true label")
        if len(value) > MAX_LABEL_LENGTH:
            raise InvalidInputError(
                f"{where}: the label has {len(value)} characters; at most {MAX_LABEL_LENGTH}"
            )
        return value
    raise InvalidInputError(
        f"{where}: the label must be a number, a string or a boolean, or a list of them "
        f"(one per row); got {type(value).__name__}"
    )


def _check_label(value: Any, where: str) -> FeedbackLabel:
    if isinstance(value, list | tuple):
        if not value:
            raise InvalidInputError(f"{where}: the label list is empty; give one label per row")
        return tuple(_check_scalar(v, f"{where}, row {i}") for i, v in enumerate(value))
    return _check_scalar(value, where)


def _too_many(count: str, limit: int) -> RequestTooLargeError:
    return RequestTooLargeError(
        f"feedback has {count} items; send at most {limit} per call (split the rest into "
        "further calls)"
    )


# -- JSON ---------------------------------------------------------------------------------------
def parse_feedback_json(
    body: bytes | str | Any, *, max_items: int = MAX_FEEDBACK_ITEMS
) -> list[FeedbackItem]:
    """Feedback items from a JSON body (raw bytes/text, or the already-decoded value)."""
    if isinstance(body, bytes | bytearray | memoryview | str):
        try:
            body = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise InvalidInputError(
                f"the feedback body is not valid JSON (line {exc.lineno}, column {exc.colno}); "
                'send {"id": ..., "label": ...} or a list of them'
            ) from None
    items = [body] if isinstance(body, Mapping) else body
    if not isinstance(items, list):
        raise InvalidInputError(
            'the feedback body must be an object {"id": ..., "label": ...} or a list of them, '
            f"got {type(body).__name__}"
        )
    if not items:
        raise InvalidInputError("the feedback list is empty; send at least one {id, label} item")
    if len(items) > max_items:
        raise _too_many(str(len(items)), max_items)
    return [_json_item(item, f"feedback[{i}]") for i, item in enumerate(items)]


def _json_item(item: Any, where: str) -> FeedbackItem:
    if not isinstance(item, Mapping):
        raise InvalidInputError(
            f'{where}: must be an object {{"id": ..., "label": ...}}, got {type(item).__name__}'
        )
    extra = sorted(str(k)[:40] for k in item if k not in ("id", "label"))
    if extra:
        raise InvalidInputError(
            f"{where}: unknown field(s) {', '.join(map(repr, extra[:5]))}; only 'id' and "
            "'label' are read"
        )
    for field in ("id", "label"):
        if field not in item:
            raise InvalidInputError(f"{where}: the {field!r} field is missing")
    return FeedbackItem(_check_id(item["id"], where), _check_label(item["label"], where))


# -- CSV ----------------------------------------------------------------------------------------
def _lines(source: str | bytes | Iterable[str], where: str) -> Iterable[str]:
    if isinstance(source, bytes):
        try:
            source = source.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise InvalidInputError(
                f"{where} is not UTF-8 text (bad byte at offset {exc.start}); save it as UTF-8"
            ) from None
    if isinstance(source, str):
        return io.StringIO(source, newline="")
    return source


def _csv_label(text: str, where: str) -> FeedbackLabel:
    text = text.strip()
    if not text:
        raise InvalidInputError(f"{where}: the label is empty; give the true label")
    if text.startswith("["):
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError:
            raise InvalidInputError(
                f"{where}: a label starting with '[' must be a JSON list with one label per row"
            ) from None
        return _check_label(value, where)
    if _INTEGER.fullmatch(text):
        return int(text)
    if _DECIMAL.fullmatch(text) and math.isfinite(number := float(text)):
        return number
    return _check_scalar(text, where)


def _rows(lines: Iterable[str], where: str) -> Iterator[tuple[int, list[str]]]:
    reader = csv.reader(lines, strict=True)
    try:
        for row in reader:
            yield reader.line_num, row
    except csv.Error as exc:
        raise InvalidInputError(
            f"{where} line {reader.line_num}: not valid CSV ({exc}); quote labels that hold "
            "commas or quotes"
        ) from None


def parse_feedback_csv(
    source: str | bytes | Iterable[str],
    *,
    max_items: int = MAX_FEEDBACK_ITEMS,
    name: str = "feedback CSV",
) -> list[FeedbackItem]:
    """Feedback items from CSV text, bytes or an open text file (``newline=""``).

    The first line must be the header ``id,label``; blank lines are skipped. ``name`` (a file
    name, say) starts every error message.
    """
    items: list[FeedbackItem] = []
    header_seen = False
    for number, row in _rows(_lines(source, name), name):
        where = f"{name} line {number}"
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if not header_seen:
            cells = [c.strip().lstrip("\ufeff").lower() for c in row]
            if cells != ["id", "label"]:
                shown = ",".join(c[:30] for c in cells[:4])
                raise InvalidInputError(
                    f"{where}: the header must be 'id,label', got {shown!r}; add that header line"
                )
            header_seen = True
            continue
        if len(row) != 2:
            raise InvalidInputError(
                f"{where}: expected 2 fields (id,label), got {len(row)}; quote labels that hold "
                "commas"
            )
        if len(items) >= max_items:
            raise _too_many(f"more than {max_items} (at {where})", max_items)
        items.append(FeedbackItem(_check_id(row[0].strip(), where), _csv_label(row[1], where)))
    if not header_seen:
        raise InvalidInputError(f"{name} is empty; it needs the header 'id,label' and data lines")
    if not items:
        raise InvalidInputError(f"{name} has a header but no data lines; add 'id,label' lines")
    return items
