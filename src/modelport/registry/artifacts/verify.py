"""Check that a directory holds exactly the files of a manifest, each with its recorded sha256."""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path

from modelport.core.digest import Manifest, ManifestEntry
from modelport.core.errors import DigestMismatchError, IntegrityError, UnsafePathError
from modelport.registry.artifacts._io import (
    DIR_FLAGS,
    LINK_ERRNOS,
    open_regular,
    open_subdirs,
    read_chunks,
    short,
)

__all__ = ["check_tree", "verify_dir"]


def check_tree(manifest: Manifest) -> None:
    """Refuse a manifest that lists a path both as a file and as a parent directory."""
    files = {entry.path for entry in manifest.entries}
    for entry in manifest.entries:
        parts = entry.path.split("/")
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            if parent in files:
                raise IntegrityError(
                    f"manifest {short(manifest.digest)} lists {parent!r} both as a file and as "
                    f"the directory of {entry.path!r}; re-register the model"
                )


def verify_dir(manifest: Manifest, path: Path) -> None:
    """Raise ``DigestMismatchError`` naming the first file of ``path`` unlike ``manifest``.

    ``path`` must contain exactly the manifest's files (and their directories): a missing file, an
    extra file or directory, a symbolic link, a special file, a different size or a different
    sha256 all fail. Every file is re-hashed on every call. Nothing is followed or modified.
    """
    check_tree(manifest)
    label = f"artifact directory {path} of {short(manifest.digest)}"
    try:
        root = os.open(path, DIR_FLAGS)
    except FileNotFoundError as exc:
        raise DigestMismatchError(f"{label} does not exist") from exc
    except OSError as exc:
        if exc.errno not in LINK_ERRNOS:
            raise
        raise DigestMismatchError(f"{label} is a symbolic link or not a directory") from exc
    try:
        _check_listing(manifest, root, label)
        for entry in manifest.entries:
            _check_file(manifest, entry, root, path)
    except OSError as exc:
        if exc.errno not in (errno.ENOENT, *LINK_ERRNOS):
            raise
        raise DigestMismatchError(f"{label} changed while it was being verified") from exc
    finally:
        os.close(root)


def _expected_dirs(manifest: Manifest) -> set[str]:
    dirs: set[str] = set()
    for entry in manifest.entries:
        parts = entry.path.split("/")
        dirs.update("/".join(parts[:depth]) for depth in range(1, len(parts)))
    return dirs


def _check_listing(manifest: Manifest, root: int, label: str) -> None:
    """Compare the tree under ``root`` with the manifest without following anything."""
    files = {entry.path for entry in manifest.entries}
    dirs = _expected_dirs(manifest)
    seen: set[str] = set()
    stack: list[tuple[int, str]] = [(os.dup(root), "")]
    try:
        while stack:
            fd, prefix = stack.pop()
            try:
                with os.scandir(fd) as it:
                    entries = sorted(it, key=lambda e: e.name)
                for entry in entries:
                    rel = f"{prefix}{entry.name}"
                    if entry.is_symlink():
                        raise DigestMismatchError(f"{rel!r} in {label} is a symbolic link")
                    if entry.is_dir(follow_symlinks=False):
                        if rel not in dirs:
                            raise DigestMismatchError(
                                f"directory {rel!r} in {label} is not in the manifest"
                            )
                        stack.append((os.open(entry.name, DIR_FLAGS, dir_fd=fd), f"{rel}/"))
                    elif not entry.is_file(follow_symlinks=False):
                        raise DigestMismatchError(f"{rel!r} in {label} is not a regular file")
                    elif rel not in files:
                        raise DigestMismatchError(f"file {rel!r} in {label} is not in the manifest")
                    else:
                        seen.add(rel)
            finally:
                os.close(fd)
    finally:
        for fd, _ in stack:
            os.close(fd)
    missing = sorted(files - seen)
    if missing:
        raise DigestMismatchError(f"artifact file {missing[0]!r} is missing from {label}")


def _check_file(manifest: Manifest, entry: ManifestEntry, root: int, path: Path) -> None:
    *dirs, name = entry.path.split("/")
    what = f"artifact file {entry.path!r} of {short(manifest.digest)} in {path}"
    try:
        dir_fd = open_subdirs(root, dirs, create=False, where=str(path))
        try:
            handle = open_regular(name, what=what, dir_fd=dir_fd)
        finally:
            os.close(dir_fd)
    except (FileNotFoundError, UnsafePathError) as exc:
        raise DigestMismatchError(f"{what} is missing or not a regular file") from exc
    with handle:
        size = os.fstat(handle.fileno()).st_size
        if size == entry.size:
            digest = hashlib.sha256()
            for chunk in read_chunks(handle):
                digest.update(chunk)
            actual = digest.hexdigest()
            if actual == entry.sha256:
                return
            got = f"sha256:{actual}, {size} bytes"
        else:
            got = f"{size} bytes"
    raise DigestMismatchError(
        f"{what} does not match its recorded digest (expected sha256:{entry.sha256}, "
        f"{entry.size} bytes; got {got}); the local copy is corrupt or was tampered with - "
        f"delete {path} and load again to fetch a verified copy from the artifact store"
    )
