"""The default artifact store: a local directory of content-addressed blobs.

Layout under ``root``::

    blobs/sha256/<first 2 hex>/<64 hex>    one read-only file per blob
    tmp/<random>.part                      uploads in progress (same filesystem, so the final
                                           ``os.replace`` is atomic)

Every path below ``root`` is opened through directory file descriptors with ``O_NOFOLLOW``: a
symbolic link planted anywhere under ``root`` is refused with ``UnsafePathError`` and never
followed, so the store cannot be made to read or write outside ``root``. ``root`` itself may be a
link (it comes from configuration). POSIX only.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from modelport.core.digest import is_sha256
from modelport.core.errors import (
    ArtifactNotFoundError,
    ModelportError,
    StoreError,
    UnsafePathError,
)
from modelport.registry.artifacts._io import (
    DIR_FLAGS,
    check_key,
    copy_verified,
    hash_copy,
    open_dir,
    open_regular,
    put_regular_file,
    read_chunks,
)

__all__ = ["LocalArtifactStore"]

_BLOBS = ("blobs", "sha256")
_TMP = ("tmp",)
_NEW_TMP = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_SHARD = re.compile(r"[0-9a-f]{2}")


class LocalArtifactStore:
    """Blobs in a local directory. Safe for concurrent writers (threads and processes).

    ``put_*`` always installs the freshly hashed copy with an atomic ``os.replace``, so storing
    the same bytes again is idempotent and also repairs a blob that was damaged on disk.
    ``delete`` of an absent blob is a no-op.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(os.path.abspath(root))
        self.uri = self.root.as_uri()

    def __repr__(self) -> str:
        return f"LocalArtifactStore({str(self.root)!r})"

    def put_file(self, path: Path) -> tuple[str, int]:
        """Store a regular file's bytes (a symlink, fifo or device is refused)."""
        return put_regular_file(self.put_stream, path)

    def put_stream(self, stream: BinaryIO) -> tuple[str, int]:
        with self._errors("storing a blob"):
            tmp_fd = open_dir(self.root, _TMP, create=True)
            try:
                return self._put(stream, tmp_fd)
            finally:
                os.close(tmp_fd)

    def exists(self, sha256: str) -> bool:
        key = check_key(sha256)
        with self._errors(f"looking up blob sha256:{key}"):
            try:
                shard = open_dir(self.root, (*_BLOBS, key[:2]), create=False)
            except FileNotFoundError:
                return False
            try:
                st = os.stat(key, dir_fd=shard, follow_symlinks=False)
            except FileNotFoundError:
                return False
            finally:
                os.close(shard)
        if not stat.S_ISREG(st.st_mode):
            raise self._not_a_blob(key)
        return True

    def fetch(self, sha256: str, dest: Path) -> None:
        key = check_key(sha256)
        with self._errors(f"fetching blob sha256:{key}"):
            src = self._open_blob(key)
            with src:
                copy_verified(read_chunks(src), dest, key, self.uri)

    def delete(self, sha256: str) -> None:
        key = check_key(sha256)
        with self._errors(f"deleting blob sha256:{key}"):
            try:
                shard = open_dir(self.root, (*_BLOBS, key[:2]), create=False)
            except FileNotFoundError:
                return
            try:
                os.unlink(key, dir_fd=shard)
            except FileNotFoundError:
                return
            finally:
                os.close(shard)

    def list_blobs(self) -> list[str]:
        """Every stored blob key, sorted. Entries that do not fit the layout are ignored."""
        with self._errors("listing blobs"):
            try:
                base = open_dir(self.root, _BLOBS, create=False)
            except FileNotFoundError:
                return []
            try:
                return sorted(self._scan(base))
            finally:
                os.close(base)

    def close(self) -> None:
        """Nothing to release; present so every store can be closed the same way."""

    # -- internals -------------------------------------------------------------------------

    def _put(self, stream: BinaryIO, tmp_fd: int) -> tuple[str, int]:
        name = f"{secrets.token_hex(12)}.part"
        fd = os.open(name, _NEW_TMP, 0o644, dir_fd=tmp_fd)
        try:
            with os.fdopen(fd, "wb") as out:
                key, size = hash_copy(stream, out)
                out.flush()
                os.fchmod(out.fileno(), 0o444)
                os.fsync(out.fileno())
            shard = open_dir(self.root, (*_BLOBS, key[:2]), create=True)
            try:
                os.replace(name, key, src_dir_fd=tmp_fd, dst_dir_fd=shard)
                os.fsync(shard)
            finally:
                os.close(shard)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name, dir_fd=tmp_fd)
            raise
        return key, size

    def _open_blob(self, key: str) -> BinaryIO:
        try:
            shard = open_dir(self.root, (*_BLOBS, key[:2]), create=False)
        except FileNotFoundError as exc:
            raise self._missing(key) from exc
        try:
            return open_regular(key, what=f"blob {self._relpath(key)!r}", dir_fd=shard)
        except FileNotFoundError as exc:
            raise self._missing(key) from exc
        except UnsafePathError as exc:
            raise self._not_a_blob(key) from exc
        finally:
            os.close(shard)

    def _scan(self, base: int) -> Iterator[str]:
        with os.scandir(base) as shards:
            names = [e.name for e in shards if e.is_dir(follow_symlinks=False)]
        for shard_name in names:
            if not _SHARD.fullmatch(shard_name):
                continue
            shard = os.open(shard_name, DIR_FLAGS, dir_fd=base)
            try:
                with os.scandir(shard) as blobs:
                    for entry in blobs:
                        name = entry.name
                        if (
                            entry.is_file(follow_symlinks=False)
                            and name.startswith(shard_name)
                            and is_sha256(name)
                        ):
                            yield name
            finally:
                os.close(shard)

    def _relpath(self, key: str) -> str:
        return "/".join((*_BLOBS, key[:2], key))

    def _missing(self, key: str) -> ArtifactNotFoundError:
        return ArtifactNotFoundError(f"blob sha256:{key} is not in the artifact store {self.uri}")

    def _not_a_blob(self, key: str) -> UnsafePathError:
        return UnsafePathError(
            f"{self._relpath(key)!r} in the artifact store {self.uri} is a symbolic link or not a "
            "regular file; the store never follows links - remove it and store the blob again"
        )

    @contextlib.contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """Turn unexpected OS errors (permissions, full disk) into a ``StoreError``."""
        try:
            yield
        except ModelportError:
            raise
        except OSError as exc:
            reason = exc.strerror or exc.__class__.__name__
            raise StoreError(
                f"{action} in the artifact store {self.uri} failed: {reason}; check that the "
                "directory exists, is writable by this user and has free space"
            ) from exc
