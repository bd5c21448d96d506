"""Reading dataset files (CSV, Parquet) and writing in-memory frames for registration."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from modelport.core.errors import InvalidInputError, MissingExtraError
from modelport.core.signature import canonical_dtype

__all__ = ["dataset_format", "read_table", "table_schema", "write_frame"]

MAX_DATASET_BYTES = 2 * 1024**3


def dataset_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".csv", ".txt"):
        return "csv"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    raise InvalidInputError(
        f"dataset file {path.name!r} is neither CSV (.csv) nor Parquet (.parquet); convert it first"
    )


def _pandas() -> Any:
    return importlib.import_module("pandas")


def _require_parquet() -> None:
    try:
        importlib.import_module("pyarrow")
    except ImportError as exc:
        raise MissingExtraError("pyarrow", "parquet") from exc


def read_table(path: Path) -> Any:
    """A DataFrame from a CSV or Parquet file, with a clear error for anything else."""
    if not path.is_file():
        raise InvalidInputError(f"dataset file {str(path)!r} does not exist or is not a file")
    if path.stat().st_size > MAX_DATASET_BYTES:
        raise InvalidInputError(f"dataset file {path.name!r} is larger than 2 GiB")
    fmt = dataset_format(path)
    pd = _pandas()
    try:
        if fmt == "parquet":
            _require_parquet()
            return pd.read_parquet(path)
        return pd.read_csv(path)
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise InvalidInputError(
            f"dataset file {path.name!r} could not be read as {fmt}: {type(exc).__name__}; "
            "check the file is a valid table with a header row"
        ) from exc


def table_schema(frame: Any) -> dict[str, str]:
    return {str(c): canonical_dtype(d) for c, d in zip(frame.columns, frame.dtypes, strict=True)}


def write_frame(frame: Any, directory: Path, stem: str) -> Path:
    """Write an in-memory frame deterministically: Parquet when pyarrow is there, else CSV."""
    try:
        importlib.import_module("pyarrow")
    except ImportError:
        path = directory / f"{stem}.csv"
        frame.to_csv(path, index=False)
        return path
    path = directory / f"{stem}.parquet"
    frame.to_parquet(path, index=False)
    return path
