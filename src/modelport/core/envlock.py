"""Environment locks and their comparison with a running interpreter (pure).

Capturing a lock from the installed distributions is I/O and lives in ``packaging.envlock``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from packaging.version import InvalidVersion, Version

__all__ = [
    "EnvironmentLock",
    "Mismatch",
    "PackagePin",
    "blocking",
    "compare_locks",
    "normalize_package",
]

Severity = Literal["high", "medium", "low"]


def normalize_package(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


@dataclass(frozen=True, slots=True)
class PackagePin:
    name: str
    version: str
    hashes: tuple[str, ...] = ()
    framework: bool = False

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "version": self.version}
        if self.hashes:
            out["hashes"] = list(self.hashes)
        if self.framework:
            out["framework"] = True
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PackagePin:
        return cls(
            name=str(data["name"]),
            version=str(data["version"]),
            hashes=tuple(str(h) for h in data.get("hashes", ())),
            framework=bool(data.get("framework", False)),
        )


@dataclass(frozen=True, slots=True)
class EnvironmentLock:
    python: str
    packages: tuple[PackagePin, ...] = field(default=())
    platform: str = ""

    @property
    def python_minor(self) -> str:
        return ".".join(self.python.split(".")[:2])

    def get(self, name: str) -> PackagePin | None:
        key = normalize_package(name)
        for pin in self.packages:
            if normalize_package(pin.name) == key:
                return pin
        return None

    def requirements(self) -> list[str]:
        """``name==version`` lines (with ``--hash`` where known), sorted."""
        lines = []
        for pin in sorted(self.packages, key=lambda p: normalize_package(p.name)):
            line = f"{pin.name}=={pin.version}"
            for digest in pin.hashes:
                line += f" --hash={digest}"
            lines.append(line)
        return lines

    def to_dict(self) -> dict[str, Any]:
        return {
            "python": self.python,
            "platform": self.platform,
            "packages": [p.to_dict() for p in self.packages],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EnvironmentLock:
        return cls(
            python=str(data["python"]),
            platform=str(data.get("platform", "")),
            packages=tuple(PackagePin.from_dict(p) for p in data.get("packages", [])),
        )


@dataclass(frozen=True, slots=True)
class Mismatch:
    package: str
    locked: str | None
    current: str | None
    severity: Severity
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "package": self.package,
            "locked": self.locked,
            "current": self.current,
            "severity": self.severity,
            "reason": self.reason,
        }


def _release(text: str) -> tuple[int, ...] | None:
    try:
        return Version(text).release
    except InvalidVersion:
        return None


def _pin_severity(pin: PackagePin, current: str) -> tuple[Severity, str]:
    locked_r, current_r = _release(pin.version), _release(current)
    if locked_r is None or current_r is None:
        return ("medium" if pin.framework else "low"), "versions differ"
    if locked_r[:1] != current_r[:1]:
        return ("high" if pin.framework else "medium"), "major version differs"
    if locked_r[:2] != current_r[:2]:
        return ("high" if pin.framework else "low"), "minor version differs"
    return ("medium" if pin.framework else "low"), "patch version differs"


def compare_locks(locked: EnvironmentLock, current: EnvironmentLock) -> list[Mismatch]:
    """Every difference between a stored lock and the running environment, worst first.

    Severity: ``high`` for a different Python minor or a framework's major/minor version;
    ``medium`` for a framework patch or another package's major version; ``low`` otherwise.
    A locked package missing from the interpreter is ``high`` for a framework, ``medium`` else.
    """
    out: list[Mismatch] = []
    if locked.python_minor != current.python_minor:
        out.append(
            Mismatch(
                "python", locked.python, current.python, "high", "Python minor version differs"
            )
        )
    for pin in locked.packages:
        have = current.get(pin.name)
        if have is None:
            severity: Severity = "high" if pin.framework else "medium"
            out.append(Mismatch(pin.name, pin.version, None, severity, "not installed"))
            continue
        if have.version != pin.version:
            severity, reason = _pin_severity(pin, have.version)
            out.append(Mismatch(pin.name, pin.version, have.version, severity, reason))
    order = {"high": 0, "medium": 1, "low": 2}
    return sorted(out, key=lambda m: (order[m.severity], normalize_package(m.package)))


def blocking(mismatches: Iterable[Mismatch]) -> list[Mismatch]:
    """The mismatches a strict policy refuses to load with."""
    return [m for m in mismatches if m.severity == "high"]
