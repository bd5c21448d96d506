"""The local directory store: layout, atomic writes, and symlinks planted under its root."""

from __future__ import annotations

import hashlib
import io
import os
import stat
from pathlib import Path

import pytest
from store_cases import local_blob_path

from modelport.core.errors import DigestMismatchError, StoreError, UnsafePathError
from modelport.registry.artifacts import LocalArtifactStore

DATA = b"model weights"
KEY = hashlib.sha256(DATA).hexdigest()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory outside the store holding a file named like the blob, with the right bytes."""
    path = tmp_path / "outside"
    path.mkdir()
    (path / KEY).write_bytes(DATA)
    return path


def _snapshot(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in path.rglob("*") if p.is_file()}


def test_layout_and_read_only_blobs(root: Path) -> None:
    store = LocalArtifactStore(root)
    assert store.put_stream(io.BytesIO(DATA)) == (KEY, len(DATA))
    blob = local_blob_path(root, KEY)
    assert blob.read_bytes() == DATA
    assert stat.S_IMODE(blob.stat().st_mode) == 0o444
    assert os.listdir(root / "tmp") == []
    assert store.uri == root.as_uri()


def test_relative_root_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = LocalArtifactStore(Path("rel store"))
    assert store.root == tmp_path / "rel store"
    assert store.uri == (tmp_path / "rel store").as_uri()


def test_reading_an_absent_root_creates_nothing(root: Path, tmp_path: Path) -> None:
    store = LocalArtifactStore(root)
    assert not store.exists(KEY)
    assert store.list_blobs() == []
    store.delete(KEY)
    assert not root.exists()


def test_put_repairs_a_damaged_blob(root: Path, tmp_path: Path) -> None:
    store = LocalArtifactStore(root)
    store.put_stream(io.BytesIO(DATA))
    blob = local_blob_path(root, KEY)
    blob.chmod(0o644)
    blob.write_bytes(b"garbage")
    with pytest.raises(DigestMismatchError):
        store.fetch(KEY, tmp_path / "out")
    store.put_stream(io.BytesIO(DATA))
    store.fetch(KEY, tmp_path / "out")
    assert (tmp_path / "out").read_bytes() == DATA


@pytest.mark.parametrize(
    "link", ["blobs", "blobs/sha256", f"blobs/sha256/{KEY[:2]}", f"blobs/sha256/{KEY[:2]}/{KEY}"]
)
def test_planted_symlink_is_never_followed_on_read(
    root: Path, outside: Path, tmp_path: Path, link: str
) -> None:
    """The outside file has exactly the right bytes: following the link would "succeed"."""
    store = LocalArtifactStore(root)
    planted = root / link
    planted.parent.mkdir(parents=True, exist_ok=True)
    target = outside / KEY if link.endswith(KEY) else outside
    if link == "blobs":
        (outside / "sha256" / KEY[:2]).mkdir(parents=True)
        (outside / "sha256" / KEY[:2] / KEY).write_bytes(DATA)
    elif link == "blobs/sha256":
        (outside / KEY[:2]).mkdir()
        (outside / KEY[:2] / KEY).write_bytes(DATA)
    os.symlink(target, planted)
    before = _snapshot(outside)

    with pytest.raises(UnsafePathError, match="symbolic link"):
        store.fetch(KEY, tmp_path / "out")
    with pytest.raises(UnsafePathError, match="symbolic link"):
        store.exists(KEY)
    assert not (tmp_path / "out").exists()
    assert _snapshot(outside) == before


@pytest.mark.parametrize("link", ["tmp", "blobs", f"blobs/sha256/{KEY[:2]}"])
def test_planted_symlink_is_never_followed_on_write(root: Path, tmp_path: Path, link: str) -> None:
    store = LocalArtifactStore(root)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (root / link).parent.mkdir(parents=True, exist_ok=True)
    os.symlink(elsewhere, root / link)
    with pytest.raises(UnsafePathError, match="symbolic link"):
        store.put_stream(io.BytesIO(DATA))
    assert list(elsewhere.rglob("*")) == []
    if link != "tmp":
        assert os.listdir(root / "tmp") == []  # the partial upload was cleaned up


def test_a_planted_blob_link_is_replaced_not_written_through(
    root: Path, outside: Path, tmp_path: Path
) -> None:
    store = LocalArtifactStore(root)
    blob = local_blob_path(root, KEY)
    blob.parent.mkdir(parents=True)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    os.symlink(victim, blob)
    store.put_stream(io.BytesIO(DATA))
    assert victim.read_text() == "precious"
    assert not blob.is_symlink()
    assert blob.read_bytes() == DATA


def test_list_blobs_ignores_foreign_entries(root: Path, outside: Path) -> None:
    store = LocalArtifactStore(root)
    store.put_stream(io.BytesIO(DATA))
    shard = root / "blobs" / "sha256" / KEY[:2]
    (shard / "notes.txt").write_text("x")
    (root / "blobs" / "sha256" / "zz").mkdir()
    os.symlink(outside, root / "blobs" / "sha256" / "ff")
    os.symlink(outside / KEY, shard / ("f" * 64))
    assert store.list_blobs() == [KEY]


def test_os_errors_become_store_errors(root: Path) -> None:
    root.parent.mkdir(parents=True, exist_ok=True)
    root.write_text("a file where the store directory should be")
    store = LocalArtifactStore(root)
    with pytest.raises(StoreError, match="artifact store file://"):
        store.put_stream(io.BytesIO(DATA))
