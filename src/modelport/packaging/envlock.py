"""Capture the environment a model needs, and compare a stored lock with this interpreter."""

from __future__ import annotations

import ast
import json
import platform
import re
import sys
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

from packaging.markers import UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement

from modelport.core.envlock import EnvironmentLock, Mismatch, PackagePin, compare_locks
from modelport.core.envlock import normalize_package as _norm

__all__ = [
    "capture_lock",
    "check_lock",
    "current_for",
    "current_python",
    "imported_distributions",
]

_MAX_PACKAGES = 500


def current_python() -> str:
    return ".".join(str(p) for p in sys.version_info[:3])


def _dist(name: str) -> metadata.Distribution | None:
    """The installed distribution ``name``, or the one providing the module of that name
    (``xgboost`` may come from the ``xgboost-cpu`` distribution)."""
    try:
        return metadata.distribution(name)
    except metadata.PackageNotFoundError:
        pass
    for provider in metadata.packages_distributions().get(name.replace("-", "_"), []):
        try:
            return metadata.distribution(provider)
        except metadata.PackageNotFoundError:
            continue
    return None


def _hashes(dist: metadata.Distribution) -> tuple[str, ...]:
    """Archive hashes pip recorded for a direct-URL install (PEP 610), when there are any."""
    text = dist.read_text("direct_url.json")
    if not text:
        return ()
    try:
        info = json.loads(text).get("archive_info", {})
    except ValueError:
        return ()
    hashes = info.get("hashes") or {}
    out = [
        f"{algo}:{value}"
        for algo, value in sorted(hashes.items())
        if re.fullmatch(r"[0-9a-f]+", str(value))
    ]
    return tuple(out)


def _requirements(dist: metadata.Distribution) -> list[str]:
    names = []
    for text in dist.requires or []:
        try:
            req = Requirement(text)
        except InvalidRequirement:
            continue
        try:
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
        except UndefinedEnvironmentName:
            continue
        names.append(req.name)
    return names


def capture_lock(
    packages: Iterable[str], frameworks: Iterable[str] | None = None
) -> EnvironmentLock:
    """Python version, platform, and exact versions of ``packages`` and everything they depend on
    (transitively) in this interpreter; packages that are not installed are skipped.

    ``frameworks`` (default: the first of ``packages``) are the ones whose major/minor version a
    strict load policy insists on.
    """
    wanted = [_norm(n) for n in packages]
    frameworks = {_norm(n) for n in frameworks} if frameworks is not None else set(wanted[:1])
    pins: dict[str, PackagePin] = {}
    queue = list(wanted)
    while queue and len(pins) < _MAX_PACKAGES:
        name = queue.pop(0)
        if name in pins:
            continue
        dist = _dist(name)
        if dist is None:
            continue
        pins[name] = PackagePin(
            name=dist.metadata["Name"] or name,
            version=dist.version,
            hashes=_hashes(dist),
            framework=name in frameworks,
        )
        queue.extend(_norm(r) for r in _requirements(dist) if _norm(r) not in pins)
    return EnvironmentLock(
        python=current_python(),
        platform=f"{platform.system().lower()}-{platform.machine()}",
        packages=tuple(sorted(pins.values(), key=lambda p: _norm(p.name))),
    )


def imported_distributions(code_dir: Path) -> list[str]:
    """Installed distributions that the Python files under ``code_dir`` import (top level)."""
    modules: set[str] = set()
    for path in sorted(code_dir.rglob("*.py"))[:1000]:
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, OSError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                modules.add(node.module.split(".")[0])
    mapping = metadata.packages_distributions()
    found = {dist for module in modules for dist in mapping.get(module, [])}
    return sorted(found, key=_norm)


def current_for(lock: EnvironmentLock) -> EnvironmentLock:
    """This interpreter's versions of exactly the packages named in ``lock``."""
    pins = []
    for pin in lock.packages:
        dist = _dist(pin.name)
        if dist is not None:
            pins.append(PackagePin(pin.name, dist.version, framework=pin.framework))
    return EnvironmentLock(python=current_python(), packages=tuple(pins))


def check_lock(lock: EnvironmentLock) -> list[Mismatch]:
    """Every difference between ``lock`` and this interpreter, worst first."""
    return compare_locks(lock, current_for(lock))
