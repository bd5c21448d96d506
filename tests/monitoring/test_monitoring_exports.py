"""The public surface of modelport.monitoring's statistics modules: complete and sorted."""

from __future__ import annotations

import importlib

import pytest

import modelport.monitoring as monitoring

MODULES = ["accuracy", "drift", "sketch", "windows"]


def test_package_all_is_sorted_and_resolvable() -> None:
    assert monitoring.__all__ == sorted(monitoring.__all__)
    for name in monitoring.__all__:
        assert hasattr(monitoring, name), name


@pytest.mark.parametrize("module", MODULES)
def test_module_all_is_sorted_and_exported_by_the_package(module: str) -> None:
    mod = importlib.import_module(f"modelport.monitoring.{module}")
    assert mod.__all__ == sorted(mod.__all__)
    missing = set(mod.__all__) - set(monitoring.__all__) - {"Task"}
    assert not missing, f"add to modelport.monitoring.__all__: {sorted(missing)}"
