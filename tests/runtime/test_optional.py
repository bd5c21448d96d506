from __future__ import annotations

import pytest

from modelport.core.errors import MissingExtraError
from modelport.runtime._optional import distribution_version, require


def test_require_imports_installed_modules() -> None:
    assert require("json", "none").dumps([1]) == "[1]"


def test_a_missing_module_names_the_pip_install_line() -> None:
    with pytest.raises(MissingExtraError) as info:
        require("modelport_no_such_framework.sub", "exotic", why="loading model.xyz")
    assert info.value.package == "modelport_no_such_framework"
    assert info.value.extra == "exotic"
    assert str(info.value) == (
        "loading model.xyz: modelport_no_such_framework is not installed; "
        "install it with: pip install 'modelport[exotic]'"
    )
    assert isinstance(info.value.__cause__, ImportError)


def test_import_names_map_to_distribution_names() -> None:
    with pytest.raises(MissingExtraError) as info:
        require("sklearn.no_such_module", "sklearn")
    assert info.value.package == "scikit-learn"
    assert "importing sklearn.no_such_module failed" in str(info.value)


def test_distribution_version() -> None:
    assert distribution_version("numpy")
    assert distribution_version("modelport-no-such-distribution") == ""
