"""Content-addressed artifact stores (local directory, S3-compatible) and model file handling."""

from __future__ import annotations

from modelport.registry.artifacts.factory import open_artifact_store
from modelport.registry.artifacts.files import materialize, snapshot
from modelport.registry.artifacts.local import LocalArtifactStore
from modelport.registry.artifacts.s3 import S3ArtifactStore
from modelport.registry.artifacts.s3_names import validate_bucket
from modelport.registry.artifacts.verify import verify_dir

__all__ = [
    "LocalArtifactStore",
    "S3ArtifactStore",
    "materialize",
    "open_artifact_store",
    "snapshot",
    "validate_bucket",
    "verify_dir",
]
