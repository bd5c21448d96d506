"""Read queries of the store and its not-found errors; each takes an open connection."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import Connection, Table, func, select

from modelport.core.errors import (
    AliasNotFoundError,
    DatasetNotFoundError,
    ModelNotFoundError,
    VersionNotFoundError,
)
from modelport.core.model import (
    AliasMove,
    DatasetRef,
    DatasetVersion,
    GateReportRecord,
    ModelVersion,
    Variant,
)
from modelport.registry.sql import mapping
from modelport.registry.sql.tables import (
    alias_history,
    aliases,
    dataset_versions,
    datasets,
    gate_reports,
    model_versions,
    models,
    version_datasets,
    version_variants,
)

__all__ = [
    "alias_target",
    "dataset_id",
    "last_move",
    "latest_number",
    "load_dataset_versions",
    "load_gate_reports",
    "load_versions",
    "model_aliases",
    "model_id",
    "no_alias",
    "no_dataset_version",
    "no_version",
    "version_exists",
]


def no_version(name: str, number: int) -> VersionNotFoundError:
    return VersionNotFoundError(
        f"model {name!r} has no version {number}; run `modelport models show {name}` to list "
        "versions"
    )


def no_alias(name: str, alias: str) -> AliasNotFoundError:
    return AliasNotFoundError(
        f"model {name!r} has no alias {alias!r}; run `modelport models show {name}` to list "
        "its aliases"
    )


def no_dataset_version(name: str, number: int) -> DatasetNotFoundError:
    return DatasetNotFoundError(
        f"dataset {name!r} has no version {number}; run `modelport datasets show {name}` to "
        "list versions"
    )


def model_id(conn: Connection, name: str, lock: bool = False) -> int:
    """The id of model ``name``; with ``lock``, its row is locked until the transaction ends."""
    query = select(models.c.id).where(models.c.name == name)
    found = conn.execute(query.with_for_update() if lock else query).scalar_one_or_none()
    if found is None:
        raise ModelNotFoundError(
            f"model {name!r} is not registered; run `modelport models list` to see registered "
            "models"
        )
    return int(found)


def dataset_id(conn: Connection, name: str) -> int:
    found = conn.execute(select(datasets.c.id).where(datasets.c.name == name)).scalar_one_or_none()
    if found is None:
        raise DatasetNotFoundError(
            f"dataset {name!r} is not registered; run `modelport datasets list` to see "
            "registered datasets"
        )
    return int(found)


def latest_number(conn: Connection, table: Table, parent: Any, parent_id: int) -> int | None:
    """The highest version number under ``parent_id``; None when there is none."""
    found = conn.execute(select(func.max(table.c.number)).where(parent == parent_id)).scalar()
    return None if found is None else int(found)


def version_exists(conn: Connection, mid: int, number: int) -> bool:
    found = conn.execute(
        select(model_versions.c.id).where(
            model_versions.c.model_id == mid, model_versions.c.number == number
        )
    ).first()
    return found is not None


def alias_target(conn: Connection, mid: int, alias: str) -> int | None:
    found = conn.execute(
        select(aliases.c.version_number).where(aliases.c.model_id == mid, aliases.c.alias == alias)
    ).scalar_one_or_none()
    return None if found is None else int(found)


def model_aliases(conn: Connection, mid: int) -> dict[str, int]:
    rows = conn.execute(
        select(aliases.c.alias, aliases.c.version_number).where(aliases.c.model_id == mid)
    )
    return {alias: int(number) for alias, number in rows}


def load_versions(
    conn: Connection, mid: int, name: str, number: int | None = None
) -> list[ModelVersion]:
    """Versions of one model (or just ``number``), oldest first, with datasets, aliases and
    variants."""
    where = [model_versions.c.model_id == mid]
    if number is not None:
        where.append(model_versions.c.number == number)
    rows = conn.execute(select(model_versions).where(*where).order_by(model_versions.c.number))
    found = rows.mappings().all()
    if not found:
        return []
    links = conn.execute(
        select(
            version_datasets.c.version_id,
            version_datasets.c.role,
            datasets.c.name,
            dataset_versions.c.number,
            dataset_versions.c.digest,
        )
        .join(dataset_versions, dataset_versions.c.id == version_datasets.c.dataset_version_id)
        .join(datasets, datasets.c.id == dataset_versions.c.dataset_id)
        .join(model_versions, model_versions.c.id == version_datasets.c.version_id)
        .where(*where)
        .order_by(version_datasets.c.id)
    )
    refs: dict[int, list[DatasetRef]] = defaultdict(list)
    for version_id, role, ds_name, ds_number, digest in links:
        refs[version_id].append(DatasetRef(ds_name, ds_number, role, digest))
    by_number: dict[int, list[str]] = defaultdict(list)
    for alias, target in model_aliases(conn, mid).items():
        by_number[target].append(alias)
    numbers = {row["id"]: row["number"] for row in found}
    variants: dict[int, list[Variant]] = defaultdict(list)
    variant_rows = conn.execute(
        select(version_variants)
        .join(model_versions, model_versions.c.id == version_variants.c.version_id)
        .where(*where)
        .order_by(version_variants.c.kind)
    )
    for vrow in variant_rows.mappings():
        version_id = vrow["version_id"]
        variants[version_id].append(mapping.variant(f"{name}:{numbers[version_id]}", vrow))
    return [
        mapping.model_version(
            name, row, refs[row["id"]], by_number[row["number"]], variants[row["id"]]
        )
        for row in found
    ]


def load_dataset_versions(
    conn: Connection, name: str | None = None, number: int | None = None, digest: str | None = None
) -> list[DatasetVersion]:
    """Dataset versions matching the filters, ordered by dataset name and number."""
    query = select(datasets.c.name.label("dataset_name"), dataset_versions).join(
        datasets, datasets.c.id == dataset_versions.c.dataset_id
    )
    if name is not None:
        query = query.where(datasets.c.name == name)
    if number is not None:
        query = query.where(dataset_versions.c.number == number)
    if digest is not None:
        query = query.where(dataset_versions.c.digest == digest).order_by(dataset_versions.c.id)
    else:
        query = query.order_by(datasets.c.name, dataset_versions.c.number)
    return [
        mapping.dataset_version(row["dataset_name"], row) for row in conn.execute(query).mappings()
    ]


def load_gate_reports(
    conn: Connection, mid: int, name: str, number: int | None = None, gate: str | None = None
) -> list[GateReportRecord]:
    """Gate reports of one model (or of version ``number``, or of one ``gate``), oldest first."""
    mv = model_versions.c
    query = (
        select(mv.number, gate_reports)
        .join(model_versions, mv.id == gate_reports.c.version_id)
        .where(mv.model_id == mid)
        .order_by(gate_reports.c.id)
    )
    if number is not None:
        query = query.where(mv.number == number)
    if gate is not None:
        query = query.where(gate_reports.c.gate == gate)
    return [mapping.gate_report(name, row["number"], row) for row in conn.execute(query).mappings()]


def last_move(conn: Connection, mid: int, name: str, alias: str) -> AliasMove | None:
    """The newest history row of ``alias``, if any."""
    row = (
        conn.execute(
            select(alias_history)
            .where(alias_history.c.model_id == mid, alias_history.c.alias == alias)
            .order_by(alias_history.c.seq.desc())
            .limit(1)
        )
        .mappings()
        .first()
    )
    return None if row is None else mapping.alias_move(name, row)
