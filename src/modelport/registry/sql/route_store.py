"""The route-table third of ``SqlMetadataStore`` (a mixin: it runs its work through the store's
``_read``/``_write`` and reads the store's clock).

An endpoint's table is replaced as a whole, never edited: ``publish_routes`` is a
compare-and-swap on the row's ``generation``. It writes generation ``expected + 1`` only while
the row is still at ``expected`` (0: no row yet), under the per-endpoint lock of
``rollout_writes`` with the row locked too, and records one ``routes.publish`` audit event in
the same transaction. Of two writers that read the same generation one wins; the other gets a
``ConflictError`` and reads again. The table is checked to be a small JSON object, never
interpreted: what it means is the serving router's business (``RouteTable.from_dict``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC
from typing import Any, TypeVar

from sqlalchemy import Connection, RowMapping, insert, select, update

from modelport.core.clock import Clock
from modelport.core.errors import ConflictError, InvalidInputError
from modelport.core.rollouts import RouteRecord
from modelport.registry.sql.mapping import json_document, validate_actor
from modelport.registry.sql.rollout_rows import check_endpoint
from modelport.registry.sql.rollout_writes import lock_endpoint
from modelport.registry.sql.tables import endpoint_routes
from modelport.registry.sql.writes import add_audit

__all__ = ["MAX_TABLE_CHARS", "RouteStoreMethods"]

T = TypeVar("T")
MAX_TABLE_CHARS = 64 * 1024
"""A route table names a few versions; anything this large is a mistake, not a table."""


def _record(row: RowMapping) -> RouteRecord:
    return RouteRecord(
        endpoint=row["endpoint"],
        generation=row["generation"],
        table=dict(row["table"]),
        updated_at=row["updated_at"],
        updated_by=row["updated_by"],
    )


def _document(endpoint: str, table: object) -> dict[str, Any]:
    what = f"the route table of endpoint {endpoint!r}"
    if not isinstance(table, Mapping):
        raise InvalidInputError(
            f"{what} must be a mapping (a JSON object), not a {type(table).__name__}; publish "
            "RouteTable.to_dict()"
        )
    try:
        document: dict[str, Any] = json_document(dict(table), what)
    except InvalidInputError as exc:
        raise InvalidInputError(
            f"{what} holds a value that is not JSON; publish RouteTable.to_dict()"
        ) from exc
    size = len(json.dumps(document))
    if size > MAX_TABLE_CHARS:
        raise InvalidInputError(
            f"{what} is {size} characters of JSON; at most {MAX_TABLE_CHARS} are stored, and a "
            "table lists a few versions, so check what is being published"
        )
    return document


def _generation(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInputError(
            f"the expected route generation must be an integer >= 0 (0 before the first "
            f"publish), not {value!r}"
        )
    return value


def _conflict(endpoint: str, found: int, expected: int) -> ConflictError:
    return ConflictError(
        f"the routes of endpoint {endpoint!r} are at generation {found}, not {expected} as "
        "expected: someone published since they were read; read them again and decide anew"
    )


class RouteStoreMethods:
    """Published route tables, one per endpoint."""

    _clock: Clock

    def _read(self, action: str, work: Callable[[Connection], T]) -> T:  # pragma: no cover
        raise NotImplementedError

    def _write(self, action: str, work: Callable[[Connection], T]) -> T:  # pragma: no cover
        raise NotImplementedError

    def get_routes(self, endpoint: str) -> RouteRecord | None:
        """The endpoint's published table, None before the first publish."""
        check_endpoint(endpoint)

        def work(conn: Connection) -> RouteRecord | None:
            query = select(endpoint_routes).where(endpoint_routes.c.endpoint == endpoint)
            row = conn.execute(query).mappings().first()
            return None if row is None else _record(row)

        return self._read(f"reading the routes of endpoint {endpoint!r}", work)

    def list_routes(self) -> list[RouteRecord]:
        """Every published table, by endpoint name."""

        def work(conn: Connection) -> list[RouteRecord]:
            query = select(endpoint_routes).order_by(endpoint_routes.c.endpoint)
            return [_record(row) for row in conn.execute(query).mappings()]

        return self._read("listing the published routes", work)

    def publish_routes(
        self, endpoint: str, table: Mapping[str, Any], expected_generation: int, actor: str
    ) -> RouteRecord:
        """Replace the endpoint's table if it is still at ``expected_generation`` (0: none
        published yet), else ``ConflictError`` naming both generations; the new record has
        generation ``expected_generation + 1`` and is audited as ``routes.publish``."""
        check_endpoint(endpoint)
        expected = _generation(expected_generation)
        validate_actor(actor)
        document = _document(endpoint, table)
        clock = self._clock

        def work(conn: Connection) -> RouteRecord:
            lock_endpoint(conn, endpoint)
            c = endpoint_routes.c
            query = select(c.generation).where(c.endpoint == endpoint).with_for_update()
            stored = conn.execute(query).scalar()
            found = 0 if stored is None else int(stored)
            if found != expected:
                raise _conflict(endpoint, found, expected)
            now = clock.now()
            values = {
                "generation": found + 1,
                "table": document,
                "updated_at": now,
                "updated_by": actor,
            }
            if stored is None:
                conn.execute(insert(endpoint_routes).values(endpoint=endpoint, **values))
            else:
                done = conn.execute(
                    update(endpoint_routes)
                    .where(c.endpoint == endpoint, c.generation == found)
                    .values(**values)
                )
                if done.rowcount != 1:  # pragma: no cover - the locks above make this unreachable
                    raise _conflict(endpoint, found + 1, expected)
            details = {"generation": found + 1, "previous_generation": found, "table": document}
            add_audit(conn, now, actor, "routes.publish", "endpoint", endpoint, None, details)
            return RouteRecord(endpoint, found + 1, document, now.astimezone(UTC), actor)

        return self._write(f"publishing the routes of endpoint {endpoint!r}", work)
