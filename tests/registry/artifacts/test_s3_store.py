"""The S3 store against a real S3-compatible server: layout, multipart, errors users will meet."""

from __future__ import annotations

import hashlib
import io
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from store_cases import s3_object_key

from modelport.core.errors import (
    InvalidInputError,
    StoreError,
    StoreUnavailableError,
    UnsafePathError,
)
from modelport.registry.artifacts import validate_bucket
from modelport.registry.artifacts.s3 import S3ArtifactStore

boto3 = pytest.importorskip("boto3")

DATA = b"model weights"
KEY = hashlib.sha256(DATA).hexdigest()


@pytest.fixture
def raw(s3_server: str) -> Iterator[Any]:
    client = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
    yield client
    client.close()


@pytest.fixture
def store(s3_bucket: str, s3_server: str) -> Iterator[S3ArtifactStore]:
    store = S3ArtifactStore(s3_bucket, "team/models", endpoint_url=s3_server)
    yield store
    store.close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


BAD_BUCKETS = [
    *["ab", "A-bucket", "-bucket", "bucket-", "my..bucket", "my_bucket", "192.168.1.1", "a" * 64],
    *["xn--bucket", "sthree-x", "bucket-s3alias", "bucket.-x", "bucket-.x", "b/ucket", ""],
]


@pytest.mark.parametrize("name", BAD_BUCKETS)
def test_invalid_bucket_names(name: str) -> None:
    with pytest.raises(InvalidInputError, match="bucket name"):
        S3ArtifactStore(name, "")


@pytest.mark.parametrize("name", ["abc", "my-bucket", "my.bucket.1", "a" * 63, "1bucket"])
def test_valid_bucket_names(name: str) -> None:
    assert validate_bucket(name) == name


@pytest.mark.parametrize("prefix", ["../x", "a/../b", "a//b", "a\\b", "a%2fb", "ünï", "a/\x00"])
def test_unsafe_prefixes(prefix: str) -> None:
    with pytest.raises(UnsafePathError, match="prefix"):
        S3ArtifactStore("bucket", prefix)


def test_prefix_is_normalised() -> None:
    store = S3ArtifactStore("bucket", "/team/models/", endpoint_url="http://127.0.0.1:9")
    assert store.uri == "s3://bucket/team/models"
    store.close()
    bare = S3ArtifactStore("bucket", "", endpoint_url="http://127.0.0.1:9")
    assert bare.uri == "s3://bucket"
    bare.close()


def test_endpoint_with_credentials_is_refused_without_echoing_them() -> None:
    with pytest.raises(InvalidInputError, match="must not contain credentials") as info:
        S3ArtifactStore("bucket", "", endpoint_url="http://AKIDEXAMPLE:s3cr3t@127.0.0.1:9")
    assert "s3cr3t" not in str(info.value)


@pytest.mark.s3
def test_objects_live_under_the_prefix(store: S3ArtifactStore, raw: Any, s3_bucket: str) -> None:
    store.put_stream(io.BytesIO(DATA))
    listed = raw.list_objects_v2(Bucket=s3_bucket)["Contents"]
    assert [item["Key"] for item in listed] == [s3_object_key(KEY)]


@pytest.mark.s3
def test_large_upload_is_multipart(
    store: S3ArtifactStore, raw: Any, s3_bucket: str, tmp_path: Path
) -> None:
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(20 << 20))
    key, size = store.put_file(src)
    head = raw.head_object(Bucket=s3_bucket, Key=s3_object_key(key))
    assert head["ContentLength"] == size == 20 << 20
    assert "-" in head["ETag"]  # a multipart ETag ends in -<parts>


@pytest.mark.s3
def test_put_skips_same_size_objects_and_repairs_truncated_ones(
    store: S3ArtifactStore, raw: Any, s3_bucket: str, tmp_path: Path
) -> None:
    """Documents the cost/safety trade-off: existence plus size is checked, not the content."""
    store.put_stream(io.BytesIO(DATA))
    object_key = s3_object_key(KEY)
    raw.put_object(Bucket=s3_bucket, Key=object_key, Body=DATA[:-3])
    store.put_stream(io.BytesIO(DATA))
    assert raw.get_object(Bucket=s3_bucket, Key=object_key)["Body"].read() == DATA


@pytest.mark.s3
def test_unreachable_endpoint(s3_bucket: str, tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    store = S3ArtifactStore(s3_bucket, "p", endpoint_url=endpoint)
    try:
        started = time.monotonic()
        with pytest.raises(StoreUnavailableError) as info:
            store.exists(KEY)
        assert time.monotonic() - started < 20
        message = str(info.value)
        assert endpoint in message
        assert repr(s3_bucket) in message
        assert "check the endpoint URL" in message
        with pytest.raises(StoreUnavailableError):
            store.put_stream(io.BytesIO(DATA))
        with pytest.raises(StoreUnavailableError):
            store.fetch(KEY, tmp_path / "out")
        assert not (tmp_path / "out").exists()
    finally:
        store.close()


@pytest.mark.s3
def test_missing_bucket(s3_bucket: str, s3_server: str, tmp_path: Path) -> None:
    """(``s3_bucket`` only provides credentials; the store names another bucket.)"""
    store = S3ArtifactStore("mp-no-such-bucket", "p", endpoint_url=s3_server)
    try:
        for call in (
            lambda: store.exists(KEY),
            lambda: store.put_stream(io.BytesIO(DATA)),
            lambda: store.fetch(KEY, tmp_path / "out"),
            store.list_blobs,
        ):
            with pytest.raises(StoreUnavailableError, match="does not exist; create it"):
                call()
    finally:
        store.close()


@pytest.mark.s3
def test_missing_credentials(
    s3_bucket: str, s3_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    store = S3ArtifactStore(s3_bucket, "p", endpoint_url=s3_server)
    try:
        with pytest.raises(StoreError, match="AWS_ACCESS_KEY_ID"):
            store.exists(KEY)
    finally:
        store.close()


def test_missing_boto3_fails_loudly() -> None:
    code = (
        "import sys; sys.modules['boto3'] = None\n"
        "from modelport.core.errors import MissingExtraError\n"
        "from modelport.registry.artifacts.s3 import S3ArtifactStore\n"
        "try:\n"
        "    S3ArtifactStore('bucket', 'p')\n"
        "except MissingExtraError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert "pip install 'modelport[s3]'" in out.stdout


@pytest.mark.parametrize(
    "options",
    [{"region": "not a region!"}, {"endpoint_url": "http://[::1"}, {"endpoint_url": "ftp://h"}],
)
def test_bad_client_settings_are_invalid_input(options: dict[str, str]) -> None:
    with pytest.raises(InvalidInputError):
        S3ArtifactStore("bucket", "", **options)


@pytest.mark.s3
def test_an_injected_client_is_used_and_left_open(raw: Any, s3_bucket: str) -> None:
    store = S3ArtifactStore(s3_bucket, "p", client=raw)
    assert store.client is raw
    key, _ = store.put_stream(io.BytesIO(DATA))
    store.close()
    assert raw.head_object(Bucket=s3_bucket, Key=s3_object_key(key, "p"))["ContentLength"] == 13
