"""File primitives shared by the artifact stores and ``files``: no-follow opens and hashed copies.

Everything here works on POSIX file descriptors so that a path is resolved exactly once and a
symbolic link planted below a root is refused (``O_NOFOLLOW`` on every component) instead of being
followed out of it. The root itself is taken as given: it comes from configuration.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import stat
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, BinaryIO

from modelport.core.digest import is_sha256
from modelport.core.errors import (
    ConflictError,
    DigestMismatchError,
    InvalidInputError,
    UnsafePathError,
)

__all__ = [
    "CHUNK",
    "DIR_FLAGS",
    "LINK_ERRNOS",
    "BlobDigestMismatchError",
    "check_key",
    "copy_verified",
    "create_new",
    "hash_copy",
    "open_dir",
    "open_regular",
    "open_subdirs",
    "put_regular_file",
    "read_chunks",
    "short",
]

CHUNK = 1 << 20
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_NEW_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
LINK_ERRNOS = (errno.ELOOP, errno.ENOTDIR, errno.EMLINK)


class BlobDigestMismatchError(DigestMismatchError):
    """A blob whose bytes do not hash to its key; carries what was actually read.

    Internal refinement so ``files.materialize`` can say what it got. Callers catch the public
    ``DigestMismatchError``.
    """

    def __init__(self, message: str, expected: str, actual: str, size: int) -> None:
        super().__init__(message)
        self.expected = expected
        self.actual = actual
        self.size = size


def short(digest: str) -> str:
    """``sha256:0123456789ab…`` for messages."""
    return digest[:19] + "…" if len(digest) > 19 else digest


def check_key(value: object) -> str:
    """A blob key: exactly 64 lowercase hex characters, else ``UnsafePathError``."""
    if not isinstance(value, str) or not is_sha256(value):
        shown = repr(value)[:80].encode("ascii", "backslashreplace").decode("ascii")
        raise UnsafePathError(
            f"artifact key {shown} is not a sha256 digest; keys are exactly 64 lowercase "
            "hex characters"
        )
    return value


def open_dir(root: Path, parts: Sequence[str], *, create: bool) -> int:
    """Open ``root/parts...`` as a directory fd, refusing any link or non-directory in ``parts``.

    With ``create`` missing directories (and ``root``) are made; otherwise a missing component
    raises ``FileNotFoundError``. The caller closes the returned fd.
    """
    if create:
        os.makedirs(root, exist_ok=True)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return open_subdirs(fd, parts, create=create, where=str(root))
    finally:
        os.close(fd)


def open_subdirs(dir_fd: int, parts: Sequence[str], *, create: bool, where: str) -> int:
    """Like ``open_dir`` from an open directory fd (left open); returns a new fd."""
    fd = os.dup(dir_fd)
    try:
        for depth, part in enumerate(parts):
            try:
                nfd = _open_subdir(fd, part, create)
            except OSError as exc:
                if exc.errno not in LINK_ERRNOS:
                    raise
                shown = "/".join(parts[: depth + 1])
                raise UnsafePathError(
                    f"{shown!r} under {where} is a symbolic link or not a directory; links are "
                    "never followed - remove it"
                ) from exc
            os.close(fd)
            fd = nfd
    except BaseException:
        os.close(fd)
        raise
    return fd


def _open_subdir(dir_fd: int, name: str, create: bool) -> int:
    try:
        return os.open(name, DIR_FLAGS, dir_fd=dir_fd)
    except FileNotFoundError:
        if not create:
            raise
    with contextlib.suppress(FileExistsError):
        os.mkdir(name, 0o755, dir_fd=dir_fd)
    return os.open(name, DIR_FLAGS, dir_fd=dir_fd)


def open_regular(path: Path | str, *, what: str, dir_fd: int | None = None) -> BinaryIO:
    """Open an existing regular file for reading; refuse a symlink, fifo, socket or device.

    ``FileNotFoundError`` propagates: what "missing" means is the caller's business.
    """
    try:
        fd = os.open(path, _READ_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EMLINK):
            raise UnsafePathError(
                f"{what} is a symbolic link; links are never followed - use the real file"
            ) from exc
        raise
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise UnsafePathError(f"{what} is not a regular file (a directory, fifo or device)")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def create_new(dest: Path) -> BinaryIO:
    """Create ``dest`` as a new file (never following or replacing anything already there)."""
    try:
        fd = os.open(dest, _NEW_FLAGS, 0o644)
    except FileExistsError as exc:
        raise ConflictError(
            f"{dest} exists already; fetch writes a new file - remove it or choose another path"
        ) from exc
    except OSError as exc:
        raise InvalidInputError(
            f"cannot create {dest} ({exc.strerror}); check that its directory exists and is "
            "writable"
        ) from exc
    try:
        return os.fdopen(fd, "wb")
    except BaseException:
        os.close(fd)
        raise


def read_chunks(src: IO[bytes]) -> Iterator[bytes]:
    while chunk := src.read(CHUNK):
        yield chunk


def hash_copy(src: IO[bytes], dst: IO[bytes]) -> tuple[str, int]:
    """Copy ``src`` to ``dst`` in ``CHUNK``-sized pieces; return ``(sha256_hex, size)``."""
    digest = hashlib.sha256()
    size = 0
    for chunk in read_chunks(src):
        digest.update(chunk)
        dst.write(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def copy_verified(chunks: Iterable[bytes], dest: Path, expected: str, where: str) -> int:
    """Write ``chunks`` to the new file ``dest`` while hashing; remove it unless it is ``expected``.

    Returns the size. Raises ``BlobDigestMismatchError`` (a ``DigestMismatchError``) on mismatch.
    """
    out = create_new(dest)
    digest = hashlib.sha256()
    size = 0
    try:
        with out:
            for chunk in chunks:
                digest.update(chunk)
                out.write(chunk)
                size += len(chunk)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(dest)
        raise
    actual = digest.hexdigest()
    if actual != expected:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(dest)
        raise BlobDigestMismatchError(
            f"blob sha256:{expected} in {where} does not match its key (read {size} bytes hashing "
            f"to sha256:{actual}); the stored copy is corrupt or was tampered with",
            expected,
            actual,
            size,
        )
    return size


def put_regular_file(
    put_stream: Callable[[BinaryIO], tuple[str, int]], path: Path
) -> tuple[str, int]:
    """Store a regular file through a store's ``put_stream`` (a symlink, fifo or device is
    refused; an unreadable file is an ``InvalidInputError`` naming it)."""
    try:
        src = open_regular(path, what=f"file {str(path)!r}")
    except OSError as exc:
        raise InvalidInputError(f"cannot read {str(path)!r}: {exc.strerror}") from exc
    with src:
        return put_stream(src)
