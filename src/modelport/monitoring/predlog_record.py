"""Prediction records, the sink protocol, sampling and the conversion done before writing."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from modelport.core.errors import InvalidInputError
from modelport.monitoring.predlog_columns import MAX_ROWS, MAX_VALUES, to_columns
from modelport.monitoring.predlog_encode import encode_columns

__all__ = [
    "MAX_FIELD_LENGTH",
    "PredictionRecord",
    "PredictionSink",
    "check_sample_rate",
    "prepare_record",
    "sample_in",
]

MAX_FIELD_LENGTH = 256  # request id, endpoint, model and version names as stored


@dataclass(frozen=True, slots=True)
class PredictionRecord:
    """One answered request, as the server saw it.

    ``inputs``: a DataFrame, an array (2-D with column names in ``input_names``, or 1-D) or a
    mapping name -> array; ``outputs``: a mapping name -> array. Either may be None (a failed
    request has no outputs). ``time`` is when the answer was given (aware UTC). ``row`` is the
    sink's own encoding of the prepared record (``encode_row``), made on submit when the log
    converts there, so that its writer thread only joins rows.
    """

    request_id: str
    endpoint: str
    model: str
    version: str
    time: datetime
    latency_s: float
    rows: int
    ok: bool
    inputs: Any = None
    outputs: Mapping[str, Any] | None = None
    input_names: tuple[str, ...] | None = None
    truncated: bool = False
    row: str | None = None  # the sink's stored form, when it was made on submit


class PredictionSink(Protocol):
    def write(self, records: Sequence[PredictionRecord]) -> Sequence[tuple[str, str]] | None:
        """Store ``records`` (already converted by ``prepare_record``, unless the sink has a
        true ``converts`` attribute: then it redacts and converts them itself) or raise.
        May return the ``(model, version)`` of records it could not store; the rest were."""
        ...


def check_sample_rate(rate: float) -> float:
    """``rate`` if it is a number in [0, 1]; else ``InvalidInputError``."""
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0.0 <= rate <= 1.0:
        raise InvalidInputError(
            f"the prediction log sample rate must be a number from 0 to 1 (1 logs every "
            f"request), got {rate!r}"
        )
    return float(rate)


def sample_in(request_id: str, rate: float) -> bool:
    """Whether ``request_id`` is logged at ``rate``: a hash of the id, so the same id is always
    in or out (a request and its shadow copy are logged together, in every replica)."""
    if rate >= 1.0:
        return True
    if rate <= 0.0:
        return False
    digest = hashlib.blake2b(request_id.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") < rate * 2.0**64


def prepare_record(
    record: PredictionRecord,
    *,
    redact: Collection[str] = (),
    max_rows: int = MAX_ROWS,
    max_values: int = MAX_VALUES,
    encode: bool = False,
    encode_row: Callable[[PredictionRecord], str] | None = None,
) -> PredictionRecord:
    """``record`` with JSON-able, capped and redacted ``Columns`` as inputs and outputs (with
    ``encode``, the same columns as ``EncodedColumns``: JSON text, for a sink that stores it;
    with ``encode_row``, also the sink's stored form of the whole record in ``row``).

    Raises ``ValueError`` for a record that cannot be stored (names over ``MAX_FIELD_LENGTH``
    characters, a naive time, inputs that do not match their names).
    """
    for field in ("request_id", "endpoint", "model", "version"):
        value = getattr(record, field)
        if not isinstance(value, str) or len(value) > MAX_FIELD_LENGTH:
            raise ValueError(f"{field} must be a string of at most {MAX_FIELD_LENGTH} characters")
    if record.time.utcoffset() is None:
        raise ValueError("the record time must be timezone-aware")
    caps: dict[str, Any] = {"max_rows": max_rows, "max_values": max_values, "redact": redact}
    convert = encode_columns if encode else to_columns
    inputs: Any = None
    outputs: Any = None
    cut_in = cut_out = False
    if record.inputs is not None:
        inputs, cut_in = convert(record.inputs, record.input_names, **caps)
    if record.outputs is not None:
        outputs, cut_out = convert(record.outputs, **caps)
    ready = PredictionRecord(
        request_id=record.request_id,
        endpoint=record.endpoint,
        model=record.model,
        version=record.version,
        time=record.time,
        latency_s=record.latency_s,
        rows=record.rows,
        ok=record.ok,
        inputs=inputs,
        outputs=outputs,
        truncated=record.truncated or cut_in or cut_out,
    )
    if encode_row is None:
        return ready
    object.__setattr__(ready, "row", encode_row(ready))  # still being built: never shared
    return ready
