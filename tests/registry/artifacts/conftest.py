"""Artifact stores for the contract tests: the local directory store and the S3 store.

Each case comes with ``corrupt(key, data)``, which overwrites a stored blob's bytes directly (on
disk, or in the bucket through a separate boto3 client), the way a tamperer would. The object
locations are computed from the documented layouts, not from store internals.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from store_cases import S3_PREFIX, StoreCase, local_blob_path, s3_object_key

from modelport.registry.artifacts import LocalArtifactStore
from modelport.registry.artifacts.s3 import S3ArtifactStore
from modelport.registry.protocols import ArtifactStore


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def store_case(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreCase]:
    if request.param == "local":
        root = tmp_path / "store"

        def corrupt_file(key: str, data: bytes) -> None:
            path = local_blob_path(root, key)
            path.chmod(0o644)
            path.write_bytes(data)

        yield StoreCase("local", LocalArtifactStore(root), corrupt_file)
        return

    boto3 = pytest.importorskip("boto3")
    bucket: str = request.getfixturevalue("s3_bucket")
    endpoint: str = request.getfixturevalue("s3_server")
    store = S3ArtifactStore(bucket, S3_PREFIX, endpoint_url=endpoint)
    raw = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")

    def corrupt_object(key: str, data: bytes) -> None:
        raw.put_object(Bucket=bucket, Key=s3_object_key(key), Body=data)

    try:
        yield StoreCase("s3", store, corrupt_object)
    finally:
        store.close()
        raw.close()


@pytest.fixture
def store(store_case: StoreCase) -> ArtifactStore:
    return store_case.store
