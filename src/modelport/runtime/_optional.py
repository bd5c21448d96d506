"""Optional dependencies that fail loudly.

Every format module imports its framework through ``require`` inside ``load``/``save`` so that
``import modelport.runtime`` never needs a framework, and a missing one raises
``MissingExtraError`` naming the exact ``pip install 'modelport[extra]'``.
"""

from __future__ import annotations

import importlib
from importlib import metadata
from types import ModuleType

from modelport.core.errors import MissingExtraError

__all__ = ["distribution_version", "missing_extra", "require"]

# Import name → distribution name, where they differ.
_DISTRIBUTIONS = {"sklearn": "scikit-learn", "skops": "skops", "yaml": "pyyaml"}


def missing_extra(package: str, extra: str, why: str = "") -> MissingExtraError:
    """A ``MissingExtraError`` whose message starts with ``why`` (what needed the package)."""
    error = MissingExtraError(package, extra)
    if why:
        error.message = f"{why}: {error.message}"
        error.args = (error.message,)
    return error


def require(module: str, extra: str, why: str = "") -> ModuleType:
    """Import ``module`` or raise ``MissingExtraError`` with the ``pip install`` line."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        if exc.name != top:  # the package is there but part of it (or a dependency) is not
            detail = f"importing {module} failed ({exc})"
            why = f"{why}: {detail}" if why else detail
        raise missing_extra(_DISTRIBUTIONS.get(top, top), extra, why) from exc


def distribution_version(name: str) -> str:
    """Installed version of distribution ``name``, or ``""`` when it is not installed."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        pass
    for provider in metadata.packages_distributions().get(name.replace("-", "_"), []):
        return metadata.version(provider)
    return ""
