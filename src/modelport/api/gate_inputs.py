"""What the gates run on: smoke requests and regression data, from the registry or the caller.

Nothing is unpickled: golden requests are CSV/Parquet rows, registered datasets, in-memory
frames, or JSON in the ``core.examples`` encoding (``read_golden``). Dataset files are read
from their digest-verified copies.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from modelport.api.registry import Registry
from modelport.core.errors import InvalidInputError, InvalidRefError
from modelport.core.examples import decode
from modelport.core.model import DatasetVersion, ModelVersion
from modelport.core.names import validate_name
from modelport.registry.datasets import read_table

__all__ = [
    "MAX_GOLDEN_REQUESTS",
    "dataset_frame",
    "dataset_version",
    "is_frame",
    "read_golden",
    "regression_data",
    "smoke_requests",
]

MAX_GOLDEN_REQUESTS = 100
MAX_GOLDEN_BYTES = 64 * 1024**2
_GOLDEN_ROLES = ("golden",)
_DATA_ROLES = ("golden", "validation")


def smoke_requests(
    registry: Registry, version: ModelVersion, golden: Any
) -> tuple[list[tuple[str, Any]], dict[str, Any]]:
    """``(source, request)`` pairs: the stored input example, then at most
    ``MAX_GOLDEN_REQUESTS`` golden requests; and facts for the report (how many, from where).

    ``golden``: a DataFrame (one request per row), a list of requests, a dataset ref or
    version, or None for the golden datasets the version links.
    """
    requests: list[tuple[str, Any]] = []
    facts: dict[str, Any] = {}
    example = registry.input_example(version.ref)
    if example is not None:
        requests.append(("input_example", example))
    items: list[Any] = []
    if golden is None:
        linked = [
            registry.get_dataset(ds.name, ds.version)
            for ds in version.datasets
            if ds.role in _GOLDEN_ROLES
        ]
        for dataset in linked:
            items.extend(_rows(dataset_frame(registry, dataset)))
        if linked:
            facts["golden"] = [d.ref for d in linked]
    elif isinstance(golden, str | DatasetVersion):
        dataset = dataset_version(registry, golden)
        items = _rows(dataset_frame(registry, dataset))
        facts["golden"] = [dataset.ref]
    elif is_frame(golden):
        items = _rows(golden)
        facts["golden"] = ["frame"]
    elif isinstance(golden, Sequence):
        items = list(golden)
        facts["golden"] = ["requests"]
    else:
        raise InvalidInputError(
            "golden requests must be a DataFrame, a list of requests or a dataset ref "
            f"NAME:VERSION, not a {type(golden).__name__}"
        )
    if len(items) > MAX_GOLDEN_REQUESTS:
        facts["golden_used"] = f"the first {MAX_GOLDEN_REQUESTS} golden requests"
        items = items[:MAX_GOLDEN_REQUESTS]
    requests.extend((f"golden[{i}]", item) for i, item in enumerate(items))
    facts["requests"] = len(requests)
    return requests, facts


def _rows(frame: Any) -> list[Any]:
    """One single-row request per row (one past the cap, so the cap can be reported)."""
    return [frame.iloc[i : i + 1] for i in range(min(len(frame), MAX_GOLDEN_REQUESTS + 1))]


def regression_data(
    registry: Registry, data: Any, baseline: ModelVersion, candidate: ModelVersion
) -> tuple[Any, str]:
    """The frame to compare on and how the report names it: ``data`` (a DataFrame or a dataset
    ref or version), else the first golden, then validation, dataset the baseline, then the
    candidate, links."""
    if is_frame(data):
        return data, "frame"
    if isinstance(data, str | DatasetVersion):
        dataset = dataset_version(registry, data)
        return dataset_frame(registry, dataset), f"dataset {dataset.ref}"
    if data is not None:
        raise InvalidInputError(
            "regression data must be a DataFrame or a dataset ref NAME:VERSION, "
            f"not a {type(data).__name__}"
        )
    for version in (baseline, candidate):
        for role in _DATA_ROLES:
            for ds in version.datasets:
                if ds.role == role:
                    dataset = registry.get_dataset(ds.name, ds.version)
                    return dataset_frame(registry, dataset), f"dataset {dataset.ref} ({role})"
    raise InvalidInputError(
        f"no data to compare {candidate.ref} with {baseline.ref}: neither links a golden or "
        "validation dataset; give data (--data FILE or --dataset NAME:VERSION)"
    )


def read_golden(path: Path) -> Any:
    """Golden requests from a file: CSV/Parquet (a frame, one request per row) or JSON (one
    request or a list of them, in the ``core.examples`` encoding). Nothing is unpickled."""
    if path.suffix.lower() != ".json":
        return read_table(path)
    if not path.is_file():
        raise InvalidInputError(f"golden file {str(path)!r} does not exist or is not a file")
    if path.stat().st_size > MAX_GOLDEN_BYTES:
        raise InvalidInputError(f"golden file {path.name!r} is larger than 64 MiB")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInputError(f"golden file {path.name!r} is not valid JSON: {exc}") from exc
    items = document if isinstance(document, list) else [document]
    requests = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise InvalidInputError(
                f"golden file {path.name!r}: request {i} must be an encoded example object"
            )
        try:
            requests.append(decode(item))
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInputError(
                f"golden file {path.name!r}: request {i} is not an encoded example "
                f"({type(exc).__name__}: {exc}); write it with modelport.core.examples.encode"
            ) from exc
    return requests


def dataset_version(registry: Registry, ref: str | DatasetVersion) -> DatasetVersion:
    """The registered dataset version ``NAME:VERSION`` names."""
    if isinstance(ref, DatasetVersion):
        return ref
    name, _, number = ref.partition(":")
    if not number.isascii() or not number.isdigit():
        raise InvalidRefError(
            f"dataset ref {ref[:60]!r} must be NAME:VERSION, e.g. golden:3 (run `modelport "
            "data list` to see versions); to use a file, load it into a DataFrame first"
        )
    return registry.get_dataset(validate_name(name, kind="dataset name"), int(number))


def dataset_frame(registry: Registry, dataset: DatasetVersion) -> Any:
    """The dataset's rows, read from its digest-verified local copy."""
    directory = registry.service.materialize_dataset(dataset)
    return read_table(directory / dataset.manifest.entries[0].path)


def is_frame(value: Any) -> bool:
    return hasattr(value, "columns") and hasattr(value, "iloc")
