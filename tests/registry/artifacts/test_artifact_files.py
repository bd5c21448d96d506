"""snapshot / materialize / verify_dir against both stores: what the registry does with files."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import shutil
import threading
import types
from pathlib import Path
from typing import BinaryIO

import pytest
from store_cases import StoreCase

from modelport.core.digest import Manifest, ManifestEntry
from modelport.core.errors import (
    ArtifactNotFoundError,
    DigestMismatchError,
    IntegrityError,
    InvalidInputError,
    UnsafePathError,
)
from modelport.registry import artifacts
from modelport.registry.artifacts import (
    LocalArtifactStore,
    materialize,
    snapshot,
    verify_dir,
)
from modelport.registry.artifacts.files import MAX_FILES
from modelport.registry.protocols import ArtifactStore

FILES = {
    "model.skops": b"skops payload" * 500,
    "MLmodel": b"flavors: {}\n",
    "code/helpers.py": b"def f():\n    return 1\n",
    "code/deep/data.bin": bytes(range(256)) * 40,
}


def _write_tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    return _write_tree(tmp_path / "model", FILES)


@pytest.fixture
def local(tmp_path: Path) -> LocalArtifactStore:
    return LocalArtifactStore(tmp_path / "store")


def _cache(tmp_path: Path, manifest: Manifest) -> Path:
    return tmp_path / "cache" / manifest.digest.split(":", 1)[1]


def test_public_api_is_complete_and_sorted() -> None:
    public = {
        name
        for name, value in vars(artifacts).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert artifacts.__all__ == sorted(public - {"annotations"})


# -- snapshot ------------------------------------------------------------------------------


def test_snapshot_directory(model_dir: Path, store: ArtifactStore) -> None:
    manifest = snapshot(model_dir, store)
    assert [e.path for e in manifest.entries] == sorted(FILES)
    for entry in manifest.entries:
        data = FILES[entry.path]
        assert (entry.sha256, entry.size) == (hashlib.sha256(data).hexdigest(), len(data))
    assert sorted(store.list_blobs()) == sorted(e.sha256 for e in manifest.entries)


def test_snapshot_single_file_uses_its_name(model_dir: Path, local: LocalArtifactStore) -> None:
    manifest = snapshot(model_dir / "model.skops", local)
    assert [(e.path, e.size) for e in manifest.entries] == [
        ("model.skops", len(FILES["model.skops"]))
    ]


def test_snapshot_follows_the_source_itself_if_it_is_a_link(
    model_dir: Path, local: LocalArtifactStore, tmp_path: Path
) -> None:
    os.symlink(model_dir, tmp_path / "latest")
    assert snapshot(tmp_path / "latest", local) == snapshot(model_dir, local)


@pytest.mark.parametrize("target_kind", ["file", "dir"])
def test_snapshot_refuses_a_symlink_pointing_outside(
    model_dir: Path, local: LocalArtifactStore, tmp_path: Path, target_kind: str
) -> None:
    secret = tmp_path / "secret"
    if target_kind == "file":
        secret.write_text("aws_secret_access_key = ...")
    else:
        secret.mkdir()
        (secret / "id_rsa").write_text("PRIVATE KEY")
    os.symlink(secret, model_dir / "code" / "innocent")
    with pytest.raises(UnsafePathError, match=r"'code/innocent' under .* is a symbolic link"):
        snapshot(model_dir, local)
    assert local.list_blobs() == []  # refused before anything was uploaded


class _SwapAfterFirstPut(LocalArtifactStore):
    """After its first upload, swaps a source directory for a link, like a racing attacker."""

    def __init__(self, root: Path, swap: Path, target: Path) -> None:
        super().__init__(root)
        self.swap, self.target = swap, target

    def put_stream(self, stream: BinaryIO) -> tuple[str, int]:
        result = super().put_stream(stream)
        if self.swap.is_dir() and not self.swap.is_symlink():
            shutil.rmtree(self.swap)
            os.symlink(self.target, self.swap)
        return result


def test_snapshot_does_not_follow_a_link_swapped_in_during_upload(
    model_dir: Path, tmp_path: Path
) -> None:
    secret = _write_tree(tmp_path / "secret", {"deep/data.bin": b"secret", "helpers.py": b"s"})
    store = _SwapAfterFirstPut(tmp_path / "store", model_dir / "code", secret)
    with pytest.raises(UnsafePathError, match=r"'code' under .* is a symbolic link"):
        snapshot(model_dir, store)
    assert store.list_blobs() == [hashlib.sha256(FILES["MLmodel"]).hexdigest()]


@pytest.mark.parametrize("name", ["bad\nname.bin", "modèle.bin", "a%2e%2e", "back\\slash", " lead"])
def test_snapshot_refuses_unsafe_file_names(
    model_dir: Path, local: LocalArtifactStore, name: str
) -> None:
    (model_dir / name).write_bytes(b"x")
    with pytest.raises(UnsafePathError, match=r"cannot register .*rename the file"):
        snapshot(model_dir, local)
    assert local.list_blobs() == []


def test_snapshot_refuses_special_files(model_dir: Path, local: LocalArtifactStore) -> None:
    os.mkfifo(model_dir / "pipe")
    with pytest.raises(UnsafePathError, match=r"'pipe' under .* not a regular file"):
        snapshot(model_dir, local)


def test_snapshot_bounds_the_number_of_files(tmp_path: Path, local: LocalArtifactStore) -> None:
    many = tmp_path / "many"
    many.mkdir()
    for i in range(MAX_FILES + 1):
        (many / f"f{i}").touch()
    with pytest.raises(InvalidInputError, match="more than 10000 files"):
        snapshot(many, local)
    assert local.list_blobs() == []


def test_snapshot_refuses_missing_and_empty_sources(
    tmp_path: Path, local: LocalArtifactStore
) -> None:
    with pytest.raises(InvalidInputError, match="cannot read"):
        snapshot(tmp_path / "absent", local)
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(InvalidInputError, match="contains no files"):
        snapshot(tmp_path / "empty", local)


# -- materialize ---------------------------------------------------------------------------


def test_materialize_round_trip_and_idempotence(
    model_dir: Path, store: ArtifactStore, tmp_path: Path
) -> None:
    manifest = snapshot(model_dir, store)
    dest = _cache(tmp_path, manifest)
    assert materialize(manifest, store, dest) == dest
    assert _tree(dest) == FILES
    inode = (dest / "model.skops").stat().st_ino
    assert materialize(manifest, store, dest) == dest
    assert (dest / "model.skops").stat().st_ino == inode  # verified in place, not rebuilt
    verify_dir(manifest, dest)
    assert [p.name for p in dest.parent.iterdir()] == [dest.name]  # no temp leftovers


@pytest.mark.parametrize("damage", ["tampered", "truncated"])
def test_a_damaged_store_blob_fails_and_leaves_nothing(
    model_dir: Path, store_case: StoreCase, tmp_path: Path, damage: str
) -> None:
    manifest = snapshot(model_dir, store_case.store)
    entry = next(e for e in manifest.entries if e.path == "model.skops")
    data = FILES["model.skops"]
    store_case.corrupt(entry.sha256, b"X" * len(data) if damage == "tampered" else data[:100])
    dest = _cache(tmp_path, manifest)
    with pytest.raises(DigestMismatchError) as info:
        materialize(manifest, store_case.store, dest)
    message = str(info.value)
    assert message.startswith(f"artifact file 'model.skops' of {manifest.digest[:19]}")
    assert f"expected sha256:{entry.sha256}, {len(data)} bytes" in message
    assert "re-register the model" in message
    if damage == "truncated":
        assert "100 bytes" in message
    assert not dest.exists()
    assert list(dest.parent.iterdir()) == []


def test_a_missing_store_blob_names_the_file(
    model_dir: Path, store: ArtifactStore, tmp_path: Path
) -> None:
    manifest = snapshot(model_dir, store)
    entry = next(e for e in manifest.entries if e.path == "code/helpers.py")
    store.delete(entry.sha256)
    dest = _cache(tmp_path, manifest)
    with pytest.raises(ArtifactNotFoundError, match=r"artifact file 'code/helpers\.py'"):
        materialize(manifest, store, dest)
    assert list(dest.parent.iterdir()) == []


@pytest.mark.parametrize("change", ["tamper", "truncate", "extra file", "remove", "symlink"])
def test_a_damaged_cache_copy_is_discarded_and_fetched_again(
    model_dir: Path,
    local: LocalArtifactStore,
    tmp_path: Path,
    change: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    manifest = snapshot(model_dir, local)
    dest = materialize(manifest, local, _cache(tmp_path, manifest))
    victim = dest / "code" / "helpers.py"
    outside = tmp_path / "outside.py"
    outside.write_bytes(b"import os; os.system('evil')")
    if change == "tamper":
        victim.write_bytes(b"def f():\n    return 2\n")
    elif change == "truncate":
        victim.write_bytes(b"")
    elif change == "extra file":
        (dest / "code" / "sitecustomize.py").write_text("evil")
    elif change == "remove":
        victim.unlink()
    else:
        victim.unlink()
        os.symlink(outside, victim)
    with pytest.raises(DigestMismatchError, match="code/"):
        verify_dir(manifest, dest)
    with caplog.at_level(logging.WARNING, logger="modelport.registry.artifacts.files"):
        assert materialize(manifest, local, dest) == dest
    assert "discarding the cached artifact copy" in caplog.text
    assert _tree(dest) == FILES
    assert not victim.is_symlink()
    assert outside.read_bytes() == b"import os; os.system('evil')"
    assert [p.name for p in dest.parent.iterdir()] == [dest.name]


def test_a_symlinked_cache_directory_is_replaced_not_followed(
    model_dir: Path, local: LocalArtifactStore, tmp_path: Path
) -> None:
    manifest = snapshot(model_dir, local)
    elsewhere = _write_tree(tmp_path / "elsewhere", FILES)  # identical content, still refused
    dest = _cache(tmp_path, manifest)
    dest.parent.mkdir()
    os.symlink(elsewhere, dest)
    assert materialize(manifest, local, dest) == dest
    assert not dest.is_symlink()
    assert _tree(dest) == FILES
    assert _tree(elsewhere) == FILES


def test_concurrent_materializers_agree(
    model_dir: Path, local: LocalArtifactStore, tmp_path: Path
) -> None:
    manifest = snapshot(model_dir, local)
    dest = _cache(tmp_path, manifest)
    results: list[Path] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def run() -> None:
        barrier.wait()
        try:
            results.append(materialize(manifest, local, dest))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert results == [dest] * 6
    assert _tree(dest) == FILES
    assert [p.name for p in dest.parent.iterdir()] == [dest.name]


def test_a_manifest_with_a_file_as_a_directory_is_refused(
    local: LocalArtifactStore, tmp_path: Path
) -> None:
    sha, size = local.put_stream(io.BytesIO(b"x"))
    manifest = Manifest.of([ManifestEntry("a", sha, size), ManifestEntry("a/b", sha, size)])
    with pytest.raises(IntegrityError, match="both as a file and as the directory"):
        materialize(manifest, local, tmp_path / "cache" / "x")


def test_verify_dir_requires_a_real_directory(model_dir: Path, local: LocalArtifactStore) -> None:
    manifest = snapshot(model_dir, local)
    with pytest.raises(DigestMismatchError, match="does not exist"):
        verify_dir(manifest, model_dir / "absent")
    with pytest.raises(DigestMismatchError, match="not a directory"):
        verify_dir(manifest, model_dir / "model.skops")
    verify_dir(manifest, model_dir)  # the source itself matches its manifest
