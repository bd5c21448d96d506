"""Model files in and out of an artifact store: ``snapshot``, ``materialize`` and ``verify_dir``.

``snapshot`` turns a file or a directory into blobs plus a ``Manifest``. ``materialize`` turns a
manifest back into a directory whose files exactly match it, for a caller-chosen cache directory
specific to the manifest digest (e.g. ``home/cache/<digest hex>``).

Verification policy of ``materialize``:

* Every call re-hashes every file of an existing cache directory (a digest is verified on every
  load, not only on the first).
* A cache directory that does not verify is a damaged *local copy*: it is logged, discarded and
  rebuilt from the store. Store fetches are themselves verified, so the rebuilt copy is trusted.
* A *store* blob that does not match its digest (corrupt, truncated or tampered with) is fatal:
  ``DigestMismatchError`` names the artifact file, and nothing is left at the cache directory.

Symbolic links are never followed: under a snapshot source they are refused, in a cache directory
they fail verification.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import secrets
import shutil
import stat
import tempfile
from pathlib import Path

from modelport.core.digest import Manifest, ManifestEntry
from modelport.core.errors import (
    ArtifactNotFoundError,
    ConflictError,
    DigestMismatchError,
    IntegrityError,
    InvalidInputError,
    UnsafePathError,
)
from modelport.core.paths import MAX_DEPTH, safe_relpath
from modelport.registry.artifacts._io import (
    DIR_FLAGS,
    BlobDigestMismatchError,
    open_regular,
    open_subdirs,
    short,
)
from modelport.registry.artifacts.verify import check_tree, verify_dir
from modelport.registry.protocols import ArtifactStore

__all__ = ["MAX_FILES", "materialize", "snapshot", "verify_dir"]

MAX_FILES = 10_000
_log = logging.getLogger(__name__)


def snapshot(src: Path, store: ArtifactStore) -> Manifest:
    """Store every file of ``src`` (a file or a directory) and return the manifest.

    ``src`` itself may be a symbolic link (it is the caller's explicit choice); any link below it
    is refused with ``UnsafePathError`` and not followed, as are fifos, sockets and devices, file
    names outside the artifact path charset and more than ``MAX_FILES`` files. A single file gives
    a one-entry manifest named after ``src``. Empty directories are not recorded.
    """
    src = Path(src)
    try:
        root = src.resolve(strict=True)
        mode = os.stat(root).st_mode
    except OSError as exc:
        raise InvalidInputError(
            f"cannot read {str(src)!r} ({exc.strerror}); give the path of a model file or directory"
        ) from exc
    if stat.S_ISREG(mode):
        name = _checked_relpath(src.name or root.name, src)
        return Manifest.of([_put(store, root, name, src)])
    if not stat.S_ISDIR(mode):
        raise UnsafePathError(f"{str(src)!r} is not a regular file or a directory")
    files = _walk(root, src)
    if not files:
        raise InvalidInputError(f"directory {str(src)!r} contains no files; nothing to register")
    root_fd = os.open(root, DIR_FLAGS)
    try:
        return Manifest.of([_put(store, root, rel, src, root_fd) for rel in files])
    finally:
        os.close(root_fd)


def materialize(manifest: Manifest, store: ArtifactStore, dest: Path) -> Path:
    """Return ``dest``, a directory whose files exactly match ``manifest`` (every file verified).

    Builds into a temporary sibling and renames it into place atomically; if another process wins
    the race, its (verified) directory is used. See the module docstring for the policy.
    """
    dest = Path(dest)
    check_tree(manifest)
    if _cached_copy_ok(manifest, dest):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    try:
        for entry in manifest.entries:
            _fetch(manifest, entry, store, _make_parents(tmp, entry.path))
        _publish(manifest, tmp, dest)
    finally:
        if os.path.lexists(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


# -- snapshot ------------------------------------------------------------------------------


def _checked_relpath(rel: str, src: Path) -> str:
    try:
        return safe_relpath(rel)
    except UnsafePathError as exc:
        raise UnsafePathError(
            f"cannot register {str(src)!r}: {exc}; rename the file (or leave it out)"
        ) from exc


def _walk(root: Path, src: Path) -> list[str]:
    """Relative POSIX paths of the regular files under ``root``, sorted; links refused."""
    found: list[str] = []
    stack: list[tuple[Path, tuple[str, ...]]] = [(root, ())]
    while stack:
        directory, parts = stack.pop()
        with os.scandir(directory) as it:
            entries = sorted(it, key=lambda e: e.name)
        for entry in entries:
            rel_parts = (*parts, entry.name)
            shown = "/".join(rel_parts)
            if entry.is_symlink():
                raise UnsafePathError(
                    f"{shown!r} under {str(src)!r} is a symbolic link; links are never followed "
                    "- copy the real file into the directory instead"
                )
            if entry.is_dir(follow_symlinks=False):
                if len(rel_parts) >= MAX_DEPTH:
                    raise UnsafePathError(
                        f"{shown!r} under {str(src)!r} is nested deeper than {MAX_DEPTH} levels"
                    )
                stack.append((Path(entry.path), rel_parts))
            elif entry.is_file(follow_symlinks=False):
                found.append(_checked_relpath(shown, src))
                if len(found) > MAX_FILES:
                    raise InvalidInputError(
                        f"{str(src)!r} has more than {MAX_FILES} files; package them (e.g. as "
                        "an archive) or register a smaller directory"
                    )
            else:
                raise UnsafePathError(
                    f"{shown!r} under {str(src)!r} is not a regular file (a fifo, socket or "
                    "device); remove it from the directory"
                )
    return sorted(found)


def _put(
    store: ArtifactStore, path: Path, rel: str, src: Path, root_fd: int | None = None
) -> ManifestEntry:
    """Upload one file; under a directory it is opened through no-follow directory fds."""
    what = f"{rel!r} under {str(src)!r}"
    try:
        if root_fd is None:
            handle = open_regular(path, what=what)
        else:
            *dirs, name = rel.split("/")
            dir_fd = open_subdirs(root_fd, dirs, create=False, where=repr(str(src)))
            try:
                handle = open_regular(name, what=what, dir_fd=dir_fd)
            finally:
                os.close(dir_fd)
    except OSError as exc:
        raise InvalidInputError(f"cannot read {what}: {exc.strerror}") from exc
    with handle:
        sha, size = store.put_stream(handle)
    return ManifestEntry(rel, sha, size)


# -- materialize ---------------------------------------------------------------------------


def _cached_copy_ok(manifest: Manifest, dest: Path) -> bool:
    if not os.path.lexists(dest):
        return False
    try:
        verify_dir(manifest, dest)
    except DigestMismatchError as exc:
        _log.warning(
            "discarding the cached artifact copy at %s and fetching it again: %s", dest, exc
        )
        _discard(dest)
        return False
    return True


def _discard(path: Path) -> None:
    """Move ``path`` aside atomically, then delete it (without following links)."""
    trash = path.with_name(f".{path.name}.{secrets.token_hex(6)}.discard")
    try:
        os.rename(path, trash)
    except FileNotFoundError:
        return  # another process discarded it first
    if stat.S_ISDIR(os.lstat(trash).st_mode):
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.unlink(trash)


def _make_parents(root: Path, rel: str) -> Path:
    """Create the parent directories of ``rel`` under ``root``; refuse any non-directory."""
    parts = rel.split("/")
    current = root
    for part in parts[:-1]:
        current = current / part
        with contextlib.suppress(FileExistsError):
            os.mkdir(current)
        if not stat.S_ISDIR(os.lstat(current).st_mode):
            raise UnsafePathError(f"{str(current)!r} is a symbolic link or not a directory")
    return current / parts[-1]


def _fetch(manifest: Manifest, entry: ManifestEntry, store: ArtifactStore, target: Path) -> None:
    what = f"artifact file {entry.path!r} of {short(manifest.digest)}"
    try:
        store.fetch(entry.sha256, target)
    except ArtifactNotFoundError as exc:
        raise ArtifactNotFoundError(
            f"{what} (blob sha256:{entry.sha256}) is missing from the artifact store {store.uri}; "
            "check that the registry and the artifact store belong together, or re-register "
            "the model"
        ) from exc
    except DigestMismatchError as exc:
        got = (
            f"got sha256:{exc.actual}, {exc.size} bytes"
            if isinstance(exc, BlobDigestMismatchError)
            else "got different bytes"
        )
        raise DigestMismatchError(
            f"{what} does not match its recorded digest (expected sha256:{entry.sha256}, "
            f"{entry.size} bytes; {got}); the store copy is corrupt or was tampered with "
            "- re-register the model from its original files"
        ) from exc
    size = os.lstat(target).st_size
    if size != entry.size:
        raise IntegrityError(
            f"{what} has {size} bytes but the manifest records {entry.size}; the manifest is "
            "inconsistent - re-register the model"
        )


def _publish(manifest: Manifest, tmp: Path, dest: Path) -> None:
    """Rename ``tmp`` to ``dest``; if a concurrent materializer won, keep its verified copy."""
    for _ in range(3):
        try:
            os.rename(tmp, dest)
            return
        except OSError as exc:
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR, errno.EISDIR):
                raise
        if _cached_copy_ok(manifest, dest):
            return
    raise ConflictError(
        f"the cache directory {dest} keeps changing while being materialized; another process "
        "is writing it - retry"
    )
