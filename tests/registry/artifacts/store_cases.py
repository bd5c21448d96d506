"""Helpers shared by the artifact store tests (imported by ``conftest.py`` and the tests)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from modelport.registry.protocols import ArtifactStore

S3_PREFIX = "team/models"


@dataclass
class StoreCase:
    kind: str
    store: ArtifactStore
    corrupt: Callable[[str, bytes], None]


def local_blob_path(root: Path, key: str) -> Path:
    return root / "blobs" / "sha256" / key[:2] / key


def s3_object_key(key: str, prefix: str = S3_PREFIX) -> str:
    return f"{prefix}/blobs/sha256/{key[:2]}/{key}"
