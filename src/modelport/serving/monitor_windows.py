"""Rolling windows of one worker process, and what worker processes share through a directory.

Each worker records its own requests (``WorkerWindows``: one ``RollingWindow`` per window length
in use). With several workers the server gives them one shared directory (the Prometheus
multiprocess directory); ``SharedDirectory`` keeps there, per worker, ``windows-<pid>.json``
(the latest ``export()`` of its windows, rewritten every second or so and on every status
request it answers), and ``evaluation.json``, the figures of the last periodic evaluation. Files
of workers that are no longer alive are ignored and removed, so a restarted worker's old counts
never add up twice. One worker at a time evaluates drift, accuracy and alerts: the one holding
an advisory lock (``flock``) on ``leader.lock``; the kernel releases it when that worker dies and
another one takes over at its next evaluation.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import orjson

from modelport.core.clock import Clock
from modelport.core.errors import InvalidInputError
from modelport.monitoring.windows import RollingWindow, WindowKey

__all__ = ["SLICES_PER_WINDOW", "SharedDirectory", "WorkerWindows"]

log = logging.getLogger("modelport.serving")
SLICES_PER_WINDOW = 60
_PREFIX, _SUFFIX = "windows-", ".json"


def _window(length: int, clock: Clock, max_keys: int) -> RollingWindow:
    return RollingWindow(length, length / SLICES_PER_WINDOW, clock, max_keys=max_keys)


class WorkerWindows:
    """This worker's rolling windows, one per length (seconds); used on the event loop only."""

    def __init__(self, lengths: Iterable[int], clock: Clock, *, max_keys: int = 1024) -> None:
        self._clock = clock
        self._max_keys = max_keys
        self._windows = {
            length: _window(length, clock, max_keys) for length in sorted(set(lengths))
        }
        self._all = tuple(self._windows.values())

    @property
    def lengths(self) -> tuple[int, ...]:
        return tuple(self._windows)

    def record(self, key: WindowKey, latency_s: float, error: bool) -> None:
        for window in self._all:
            window.record(key, latency_s, error)

    def export(self) -> dict[str, Any]:
        return {str(length): window.export() for length, window in self._windows.items()}

    def merged(self, others: Iterable[Mapping[str, Any]] = ()) -> dict[int, RollingWindow]:
        """Fresh windows holding this worker's requests and those of ``others`` (exports of
        sibling workers); an export that cannot be merged is skipped and logged."""
        out = {length: _window(length, self._clock, self._max_keys) for length in self._windows}
        for exported in (self.export(), *others):
            for length, window in out.items():
                part = exported.get(str(length))
                if part is None:
                    continue
                try:
                    window.merge_export(part)
                except InvalidInputError as exc:
                    log.warning("ignoring another worker's window figures: %s", exc)
        return out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _write(path: Path, data: bytes) -> None:
    """Replace ``path`` at once (readers see the old or the new file, never a part)."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")  # unique: threads write too
    tmp.write_bytes(data)
    os.replace(tmp, path)


class SharedDirectory:
    """Files the worker processes of one server share (see module doc). Blocking I/O: call
    from a thread, not the event loop."""

    def __init__(self, directory: Path, pid: int | None = None) -> None:
        self.directory = directory
        self.pid = os.getpid() if pid is None else pid
        self._lock_fd: int | None = None

    @property
    def _own(self) -> Path:
        return self.directory / f"{_PREFIX}{self.pid}{_SUFFIX}"

    def write_windows(self, exported: Mapping[str, Any]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        _write(self._own, orjson.dumps(exported))

    def read_windows(self) -> list[dict[str, Any]]:
        """The latest window exports of the other live workers."""
        out: list[dict[str, Any]] = []
        for path in sorted(self.directory.glob(f"{_PREFIX}*{_SUFFIX}")):
            number = path.name[len(_PREFIX) : -len(_SUFFIX)]
            if not number.isdigit() or int(number) == self.pid:
                continue
            if not _alive(int(number)):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                continue
            try:
                data = orjson.loads(path.read_bytes())
            except FileNotFoundError:
                continue  # its worker just exited
            except orjson.JSONDecodeError:
                log.warning("ignoring unreadable window file %s", path.name)
                continue
            if isinstance(data, dict):
                out.append(data)
        return out

    def write_evaluation(self, evaluation: Mapping[str, Any]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        _write(self.directory / "evaluation.json", orjson.dumps(evaluation))

    def read_evaluation(self) -> dict[str, Any] | None:
        try:
            data = orjson.loads((self.directory / "evaluation.json").read_bytes())
        except FileNotFoundError:
            return None
        except orjson.JSONDecodeError:
            log.warning("ignoring an unreadable evaluation.json in %s", self.directory)
            return None
        return data if isinstance(data, dict) else None

    @property
    def leading(self) -> bool:
        """Whether this worker holds the lead (``try_lead`` succeeded)."""
        return self._lock_fd is not None

    def try_lead(self) -> bool:
        """Whether this worker is (now) the one that evaluates; never blocks."""
        if self._lock_fd is not None:
            return True
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.directory / "leader.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        self._lock_fd = fd
        return True

    def close(self) -> None:
        """Remove this worker's window file and give up the lead."""
        with contextlib.suppress(FileNotFoundError):
            self._own.unlink()
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            os.close(fd)  # releases the flock
