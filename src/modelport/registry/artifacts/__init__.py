"""Content-addressed artifact stores (local directory, S3-compatible) and model file handling.

The S3 store lives in ``modelport.registry.artifacts.s3``; it is imported only for an
``s3://`` URI, so a local store never pays for importing boto3 (~0.35 s).
"""

from __future__ import annotations

from modelport.registry.artifacts.factory import open_artifact_store
from modelport.registry.artifacts.files import materialize, snapshot
from modelport.registry.artifacts.local import LocalArtifactStore
from modelport.registry.artifacts.s3_names import validate_bucket
from modelport.registry.artifacts.verify import verify_dir

__all__ = [
    "LocalArtifactStore",
    "materialize",
    "open_artifact_store",
    "snapshot",
    "validate_bucket",
    "verify_dir",
]
