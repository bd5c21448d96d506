"""``SqlMetadataStore``: the registry's metadata on SQLite or PostgreSQL.

Every mutating method runs in one transaction together with its audit event; the transaction
bodies live in ``writes`` and the read queries in ``queries``; deployments and rollouts are the
``RolloutStoreMethods`` mixin (``rollout_store``, ``rollout_writes``, ``rollout_queries``) and
published route tables the ``RouteStoreMethods`` one (``route_store``), API keys the
``KeyStoreMethods`` one (``key_store``). A write that still
collides with a concurrent one (a unique-constraint race, a PostgreSQL serialization failure or
deadlock) is retried a few times before ``ConflictError``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.exc import DBAPIError

from modelport.core.clock import Clock, SystemClock
from modelport.core.errors import InvalidInputError, VersionNotFoundError
from modelport.core.model import (
    AliasMove,
    AuditEvent,
    DatasetRef,
    DatasetVersion,
    GateReportRecord,
    ModelVersion,
    NewDatasetVersion,
    NewModelVersion,
    RegisteredModel,
    Variant,
)
from modelport.core.names import validate_alias, validate_name
from modelport.registry.sql import mapping, queries, writes
from modelport.registry.sql.engine import make_engine, mask_url, read_only
from modelport.registry.sql.failures import is_transient, translate
from modelport.registry.sql.key_store import KeyStoreMethods
from modelport.registry.sql.migrate import upgrade
from modelport.registry.sql.rollout_store import RolloutStoreMethods
from modelport.registry.sql.route_store import RouteStoreMethods
from modelport.registry.sql.tables import (
    alias_history,
    aliases,
    audit_events,
    dataset_versions,
    model_versions,
    models,
)

__all__ = ["SqlMetadataStore"]

T = TypeVar("T")
ATTEMPTS = 5


class SqlMetadataStore(RolloutStoreMethods, RouteStoreMethods, KeyStoreMethods):
    """The ``MetadataStore`` on SQLAlchemy. ``open(url)`` creates the engine and migrates.

    ``uri`` is the database URL with its password masked. Times come from ``clock`` (UTC).
    """

    def __init__(self, engine: Engine, clock: Clock | None = None) -> None:
        self._engine = engine
        self._reader = read_only(engine)
        self._clock: Clock = clock or SystemClock()
        self.uri = mask_url(engine.url)

    @classmethod
    def open(cls, url: str, clock: Clock | None = None) -> SqlMetadataStore:
        """Connect to ``url``, bring its schema to the newest revision, return the store."""
        engine = make_engine(url)
        try:
            upgrade(engine)
        except BaseException:
            engine.dispose()
            raise
        return cls(engine, clock)

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> SqlMetadataStore:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _read(self, action: str, work: Callable[[Connection], T]) -> T:
        try:
            with self._reader.connect() as conn:
                return work(conn)
        except DBAPIError as exc:
            raise translate(exc, self._engine.url, action) from exc

    def _write(self, action: str, work: Callable[[Connection], T]) -> T:
        attempt = 1
        while True:
            try:
                with self._engine.begin() as conn:
                    return work(conn)
            except DBAPIError as exc:
                if attempt >= ATTEMPTS or not is_transient(exc):
                    raise translate(exc, self._engine.url, action) from exc
                attempt += 1

    # -- models and versions ------------------------------------------------------------------

    def add_version(self, new: NewModelVersion) -> ModelVersion:
        """Create the model if needed and record a version numbered max+1, atomically."""
        values = mapping.model_version_values(new)
        refs = _unique_refs(new.datasets)
        return self._write(
            f"registering a version of {new.name!r}",
            lambda conn: writes.add_version(conn, new.name, values, refs, self._clock),
        )

    def get_model(self, name: str) -> RegisteredModel:
        validate_name(name)

        def work(conn: Connection) -> RegisteredModel:
            mid = queries.model_id(conn, name)
            row = conn.execute(select(models).where(models.c.id == mid)).mappings().one()
            latest = queries.latest_number(conn, model_versions, model_versions.c.model_id, mid)
            return mapping.registered_model(row, latest, queries.model_aliases(conn, mid))

        return self._read(f"reading model {name!r}", work)

    def list_models(self) -> list[RegisteredModel]:
        def work(conn: Connection) -> list[RegisteredModel]:
            mv = model_versions.c
            latest_rows = conn.execute(
                select(mv.model_id, func.max(mv.number)).group_by(mv.model_id)
            )
            latest = {int(mid): int(number) for mid, number in latest_rows}
            by_model: dict[int, dict[str, int]] = {}
            for mid, alias, number in conn.execute(
                select(aliases.c.model_id, aliases.c.alias, aliases.c.version_number)
            ):
                by_model.setdefault(mid, {})[alias] = number
            rows = conn.execute(select(models).order_by(models.c.name)).mappings()
            return [
                mapping.registered_model(r, latest.get(r["id"]), by_model.get(r["id"], {}))
                for r in rows
            ]

        return self._read("listing models", work)

    def get_version(self, name: str, number: int) -> ModelVersion:
        validate_name(name)
        _check_number(number)

        def work(conn: Connection) -> ModelVersion:
            found = queries.load_versions(conn, queries.model_id(conn, name), name, number)
            if not found:
                raise queries.no_version(name, number)
            return found[0]

        return self._read(f"reading {name}:{number}", work)

    def latest_version(self, name: str) -> ModelVersion:
        validate_name(name)

        def work(conn: Connection) -> ModelVersion:
            mid = queries.model_id(conn, name)
            number = queries.latest_number(conn, model_versions, model_versions.c.model_id, mid)
            found = [] if number is None else queries.load_versions(conn, mid, name, number)
            if not found:
                raise VersionNotFoundError(
                    f"model {name!r} has no versions yet; register one with `modelport register`"
                )
            return found[0]

        return self._read(f"reading the latest version of {name!r}", work)

    def list_versions(self, name: str) -> list[ModelVersion]:
        """Every version of ``name``, oldest first."""
        validate_name(name)
        return self._read(
            f"listing versions of {name!r}",
            lambda conn: queries.load_versions(conn, queries.model_id(conn, name), name),
        )

    def add_variant(self, name: str, number: int, variant: Variant, actor: str) -> ModelVersion:
        """Record a derived artifact of ``name:number`` (one per kind), audited as
        ``version.variant``; an existing variant of the same kind is replaced (and the audit
        event says so). The version's own artifact never changes. ``variant.created_at`` is
        replaced by the store's clock."""
        validate_name(name)
        _check_number(number)
        mapping.validate_actor(actor)
        values = mapping.variant_values(variant, f"{name}:{number}")
        return self._write(
            f"recording the {variant.kind} variant of {name}:{number}",
            lambda conn: writes.add_variant(conn, name, number, values, actor, self._clock),
        )

    # -- gate reports -------------------------------------------------------------------------

    def add_gate_report(
        self,
        name: str,
        number: int,
        gate: str,
        passed: bool,
        report: Mapping[str, Any],
        actor: str,
    ) -> GateReportRecord:
        """Append a gate report to ``name:number``, audited as ``version.gate`` in the same
        transaction. Reports are never replaced: a gate run again adds a report."""
        validate_name(name)
        _check_number(number)
        mapping.validate_actor(actor)
        values = mapping.gate_report_values(gate, passed, report, f"{name}:{number}")
        return self._write(
            f"recording the {gate} report of {name}:{number}",
            lambda conn: writes.add_gate_report(conn, name, number, values, actor, self._clock),
        )

    def list_gate_reports(
        self, name: str, number: int | None = None, gate: str | None = None
    ) -> list[GateReportRecord]:
        """Gate reports of model ``name`` (or of version ``number``, or of one ``gate``),
        oldest first."""
        validate_name(name)
        if number is not None:
            _check_number(number)
        if gate is not None:
            mapping.short_key(gate, "gate name", 32)

        def work(conn: Connection) -> list[GateReportRecord]:
            mid = queries.model_id(conn, name)
            if number is not None and not queries.version_exists(conn, mid, number):
                raise queries.no_version(name, number)
            return queries.load_gate_reports(conn, mid, name, number, gate)

        shown = name if number is None else f"{name}:{number}"
        return self._read(f"reading the gate reports of {shown}", work)

    # -- aliases ------------------------------------------------------------------------------

    def resolve_alias(self, name: str, alias: str) -> int:
        validate_name(name)
        validate_alias(alias)

        def work(conn: Connection) -> int:
            target = queries.alias_target(conn, queries.model_id(conn, name), alias)
            if target is None:
                raise queries.no_alias(name, alias)
            return target

        return self._read(f"resolving {name}@{alias}", work)

    def set_alias(
        self, name: str, alias: str, number: int, actor: str, reason: str = ""
    ) -> AliasMove:
        """Point ``alias`` at version ``number`` and append the move to the history.

        Moving an alias to the version it already points at changes nothing: no history row and
        no audit event are written, and the last recorded move is returned. The history thus
        lists real moves only, each row's ``from_version`` being the previous row's
        ``to_version``.
        """
        validate_name(name)
        validate_alias(alias)
        _check_number(number)
        mapping.validate_actor(actor)
        return self._write(
            f"moving {name}@{alias}",
            lambda conn: writes.move_alias(
                conn, name, alias, number, actor, str(reason), self._clock
            ),
        )

    def delete_alias(self, name: str, alias: str, actor: str, reason: str = "") -> AliasMove:
        """Remove ``alias``; its history gains a row with ``to_version`` None."""
        validate_name(name)
        validate_alias(alias)
        mapping.validate_actor(actor)
        return self._write(
            f"deleting {name}@{alias}",
            lambda conn: writes.move_alias(
                conn, name, alias, None, actor, str(reason), self._clock
            ),
        )

    def alias_history(self, name: str, alias: str) -> list[AliasMove]:
        """Every move of ``alias``, by ``seq``; ``AliasNotFoundError`` if it was never set."""
        validate_name(name)
        validate_alias(alias)

        def work(conn: Connection) -> list[AliasMove]:
            mid = queries.model_id(conn, name)
            ah = alias_history.c
            rows = conn.execute(
                select(alias_history).where(ah.model_id == mid, ah.alias == alias).order_by(ah.seq)
            )
            moves = [mapping.alias_move(name, row) for row in rows.mappings()]
            if not moves:
                raise queries.no_alias(name, alias)
            return moves

        return self._read(f"reading the history of {name}@{alias}", work)

    # -- datasets -----------------------------------------------------------------------------

    def add_dataset_version(self, new: NewDatasetVersion) -> DatasetVersion:
        values = mapping.dataset_version_values(new)
        return self._write(
            f"registering a version of dataset {new.name!r}",
            lambda conn: writes.add_dataset_version(conn, new.name, values, self._clock),
        )

    def get_dataset_version(self, name: str, number: int | None = None) -> DatasetVersion:
        """A dataset version; the latest one when ``number`` is None."""
        validate_name(name, "dataset name")
        if number is not None:
            _check_number(number)

        def work(conn: Connection) -> DatasetVersion:
            did = queries.dataset_id(conn, name)
            dv = dataset_versions.c
            wanted = number or queries.latest_number(conn, dataset_versions, dv.dataset_id, did)
            found = [] if wanted is None else queries.load_dataset_versions(conn, name, wanted)
            if not found:
                raise queries.no_dataset_version(name, wanted or 0)
            return found[0]

        return self._read(f"reading dataset {name!r}", work)

    def find_dataset_version(self, digest: str) -> DatasetVersion | None:
        """The first registered dataset version with this content digest, if any."""
        if not isinstance(digest, str):
            raise InvalidInputError("a dataset digest must be a string like 'sha256:...'")
        found = self._read(
            "looking up a dataset by digest",
            lambda conn: queries.load_dataset_versions(conn, digest=digest),
        )
        return found[0] if found else None

    def list_dataset_versions(self, name: str | None = None) -> list[DatasetVersion]:
        """Versions of dataset ``name`` (empty if it has none yet), or of every dataset."""
        if name is not None:
            validate_name(name, "dataset name")
        return self._read(
            "listing dataset versions", lambda conn: queries.load_dataset_versions(conn, name)
        )

    # -- audit --------------------------------------------------------------------------------

    def record_audit(
        self,
        actor: str,
        action: str,
        object_type: str,
        object_name: str,
        version: int | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> AuditEvent:
        mapping.validate_actor(actor)
        mapping.short_key(action, "audit action", 100)
        mapping.short_key(object_type, "audit object type", 50)
        if not isinstance(object_name, str) or not 0 < len(object_name) <= 200:
            raise InvalidInputError("an audit object name must have 1 to 200 characters")
        if version is not None:
            _check_number(version)
        return self._write(
            f"recording {action!r}",
            lambda conn: writes.add_audit(
                conn,
                self._clock.now(),
                actor,
                action,
                object_type,
                object_name,
                version,
                details or {},
            ),
        )

    def query_audit(
        self,
        model: str | None = None,
        actor: str | None = None,
        action: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 1000,
    ) -> list[AuditEvent]:
        """The oldest ``limit`` matching events, oldest first.

        ``model`` matches the object name; ``since <= at <= until``, both timezone-aware.
        """
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise InvalidInputError(f"limit must be a positive integer, not {limit!r}")
        ae = audit_events.c
        query = select(audit_events)
        if model is not None:
            query = query.where(ae.object_name == model)
        if actor is not None:
            query = query.where(ae.actor == actor)
        if action is not None:
            query = query.where(ae.action == action)
        if since is not None:
            query = query.where(ae.at >= _aware(since, "since"))
        if until is not None:
            query = query.where(ae.at <= _aware(until, "until"))
        query = query.order_by(ae.at, ae.id).limit(limit)
        return self._read(
            "querying the audit log",
            lambda conn: [mapping.audit_event(r) for r in conn.execute(query).mappings()],
        )


def _check_number(number: object) -> None:
    if isinstance(number, bool) or not isinstance(number, int):
        raise InvalidInputError(f"a version number must be an integer, not {number!r}")


def _aware(value: datetime, what: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInputError(f"{what} must be timezone-aware, e.g. 2026-01-01T00:00:00+00:00")
    return value


def _unique_refs(refs: tuple[DatasetRef, ...]) -> list[DatasetRef]:
    out: list[DatasetRef] = []
    seen: set[tuple[str, int, str]] = set()
    for ref in refs:
        validate_name(ref.name, "dataset name")
        _check_number(ref.version)
        mapping.short_key(ref.role, "dataset role", 32)
        if (ref.name, ref.version, ref.role) not in seen:
            seen.add((ref.name, ref.version, ref.role))
            out.append(ref)
    return out
