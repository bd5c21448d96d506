"""The ArtifactStore contract, run against the local directory store and the real S3 server."""

from __future__ import annotations

import hashlib
import io
import os
import threading
from pathlib import Path

import pytest
from store_cases import StoreCase

from modelport.core.errors import (
    ArtifactNotFoundError,
    ConflictError,
    DigestMismatchError,
    InvalidInputError,
    UnsafePathError,
)
from modelport.registry.protocols import ArtifactStore

BAD_KEYS = [
    "../x",
    "a" * 63,
    "A" * 64,
    "0" * 63 + "\x00",
    "0" * 64 + "/",
    "../" + "0" * 61,
    "0" * 65,
    "",
    " " + "0" * 63,
    "\uff10" * 64,  # fullwidth digit zero
]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_put_exists_fetch_round_trip(store: ArtifactStore, tmp_path: Path) -> None:
    data = b"weights \x00\x01\x02" * 100
    key, size = store.put_stream(io.BytesIO(data))
    assert (key, size) == (_sha(data), len(data))
    assert store.exists(key)
    store.fetch(key, tmp_path / "out.bin")
    assert (tmp_path / "out.bin").read_bytes() == data
    assert store.list_blobs() == [key]


def test_put_is_idempotent(store: ArtifactStore, tmp_path: Path) -> None:
    src = tmp_path / "model.onnx"
    src.write_bytes(b"onnx bytes")
    first = store.put_file(src)
    assert store.put_file(src) == first
    assert store.put_stream(io.BytesIO(b"onnx bytes")) == first
    assert store.list_blobs() == [first[0]]


def test_empty_blob(store: ArtifactStore, tmp_path: Path) -> None:
    key, size = store.put_stream(io.BytesIO(b""))
    assert (key, size) == (_sha(b""), 0)
    store.fetch(key, tmp_path / "empty")
    assert (tmp_path / "empty").read_bytes() == b""


def test_large_file_round_trip(store: ArtifactStore, tmp_path: Path) -> None:
    """20 MiB: several 1 MiB chunks locally and a multipart upload on S3."""
    src = tmp_path / "big.bin"
    digest = hashlib.sha256()
    with open(src, "wb") as out:
        for i in range(20):
            block = hashlib.sha256(str(i).encode()).digest() * (1 << 15)  # 1 MiB
            digest.update(block)
            out.write(block)
    key, size = store.put_file(src)
    assert (key, size) == (digest.hexdigest(), 20 << 20)
    store.fetch(key, tmp_path / "copy.bin")
    assert (tmp_path / "copy.bin").read_bytes() == src.read_bytes()


def test_missing_blob(store: ArtifactStore, tmp_path: Path) -> None:
    key = _sha(b"never stored")
    assert not store.exists(key)
    with pytest.raises(ArtifactNotFoundError, match=key):
        store.fetch(key, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("damage", ["tampered", "truncated"])
def test_damaged_blob_is_refused_and_dest_removed(
    store_case: StoreCase, tmp_path: Path, damage: str
) -> None:
    data = b"the real model" * 1000
    key, _ = store_case.store.put_stream(io.BytesIO(data))
    store_case.corrupt(key, b"evil model" * 1000 if damage == "tampered" else data[:-7])
    with pytest.raises(DigestMismatchError, match=f"sha256:{key}"):
        store_case.store.fetch(key, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_fetch_never_replaces_an_existing_file(store: ArtifactStore, tmp_path: Path) -> None:
    key, _ = store.put_stream(io.BytesIO(b"blob"))
    (tmp_path / "outside.txt").write_text("keep me")
    os.symlink(tmp_path / "outside.txt", tmp_path / "dest")
    with pytest.raises(ConflictError, match="exists already"):
        store.fetch(key, tmp_path / "dest")
    assert (tmp_path / "outside.txt").read_text() == "keep me"


@pytest.mark.parametrize("key", BAD_KEYS)
def test_invalid_keys_are_refused(store: ArtifactStore, tmp_path: Path, key: str) -> None:
    with pytest.raises(UnsafePathError, match="64 lowercase hex"):
        store.exists(key)
    with pytest.raises(UnsafePathError):
        store.fetch(key, tmp_path / "out")
    with pytest.raises(UnsafePathError):
        store.delete(key)
    assert not (tmp_path / "out").exists()


def test_delete_is_idempotent(store: ArtifactStore) -> None:
    key, _ = store.put_stream(io.BytesIO(b"to delete"))
    store.delete(key)
    assert not store.exists(key)
    store.delete(key)
    assert store.list_blobs() == []


def test_list_blobs_is_sorted(store: ArtifactStore) -> None:
    keys = [store.put_stream(io.BytesIO(bytes([i]) * 10))[0] for i in range(5)]
    assert store.list_blobs() == sorted(keys)


def test_put_file_refuses_links_and_special_files(store: ArtifactStore, tmp_path: Path) -> None:
    (tmp_path / "real").write_bytes(b"x")
    os.symlink(tmp_path / "real", tmp_path / "link")
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(UnsafePathError, match="symbolic link"):
        store.put_file(tmp_path / "link")
    with pytest.raises(UnsafePathError, match="not a regular file"):
        store.put_file(tmp_path / "fifo")  # must not block waiting for a writer
    assert store.list_blobs() == []


def test_concurrent_puts_of_the_same_bytes(store: ArtifactStore) -> None:
    data = os.urandom(300_000)
    results: list[tuple[str, int]] = []
    errors: list[BaseException] = []

    def put() -> None:
        try:
            results.append(store.put_stream(io.BytesIO(data)))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=put) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert set(results) == {(_sha(data), len(data))}
    assert store.list_blobs() == [_sha(data)]


def test_uri_names_the_store(store_case: StoreCase) -> None:
    scheme = "file://" if store_case.kind == "local" else "s3://"
    assert store_case.store.uri.startswith(scheme)


def test_fetch_into_a_missing_directory(store: ArtifactStore, tmp_path: Path) -> None:
    key, _ = store.put_stream(io.BytesIO(b"blob"))
    with pytest.raises(InvalidInputError, match="check that its directory exists"):
        store.fetch(key, tmp_path / "no" / "such" / "dir" / "out")
