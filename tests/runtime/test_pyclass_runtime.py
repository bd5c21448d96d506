from __future__ import annotations

import importlib
import importlib.util
import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from modelport.core.errors import (
    ArtifactNotFoundError,
    ConflictError,
    InvalidInputError,
    ModelLoadError,
    PredictionError,
)
from modelport.runtime.base import LoadContext, Runtime
from modelport.runtime.loaders import open_runtime, save_model
from modelport.runtime.pyclass import MARKER, save_pyclass
from modelport.testing import check_runtime

MODEL = """
import json

import numpy as np

from helpers import FACTOR, features


class Model:
    def load(self, artifacts_dir):
        self.weights = json.loads((artifacts_dir / "weights.json").read_text())

    def predict(self, inputs):
        X = features(inputs)
        score = X @ np.asarray(self.weights) * FACTOR
        return {"score": score, "label": np.where(score > 0, "high", "low")}
"""

HELPERS = """
import numpy as np

FACTOR = {factor}


def features(frame):
    ratio = frame["income"].to_numpy(float) / frame["age"].to_numpy(float)
    paris = (frame["city"] == "paris").to_numpy(float)
    return np.column_stack([ratio, paris, np.ones(len(frame))])
"""

WEIGHTS = [2.0, -1.0, -1.5]


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age": [30, 45, 22, 60, 38],
            "income": [40.0, 90.0, 20.0, 50.0, 70.0],
            "city": ["paris", "lyon", "nice", "paris", "lyon"],
        }
    )


def _expected(frame: pd.DataFrame, factor: float) -> np.ndarray:
    ratio = frame["income"].to_numpy(float) / frame["age"].to_numpy(float)
    paris = (frame["city"] == "paris").to_numpy(float)
    X = np.column_stack([ratio, paris, np.ones(len(frame))])
    return np.asarray(X @ np.asarray(WEIGHTS) * factor)


def _open(path: Path, config: dict[str, Any]) -> Runtime:
    return open_runtime(LoadContext(path=path, format="python", config=config))


@pytest.fixture
def write_version(tmp_path: Path) -> Iterator[Any]:
    """Writes model.py + helpers.py for one version, imports the class the way a user would."""
    added: list[str] = []

    def write(name: str, factor: float) -> tuple[type[Any], Path, Path]:
        src = tmp_path / "src" / name
        src.mkdir(parents=True)
        (src / "model.py").write_text(MODEL)
        (src / "helpers.py").write_text(HELPERS.format(factor=factor))
        artifacts = tmp_path / "artifacts" / name
        artifacts.mkdir(parents=True)
        (artifacts / "weights.json").write_text(json.dumps(WEIGHTS))
        module_name = f"user_model_{name}"
        sys.path.insert(0, str(src))
        try:
            spec = importlib.util.spec_from_file_location(module_name, src / "model.py")
            assert spec is not None
            assert spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            added.append(module_name)
            spec.loader.exec_module(module)
        finally:
            sys.path.remove(str(src))
            sys.modules.pop("helpers", None)
        return module.Model, src, artifacts

    yield write
    for name in added:
        sys.modules.pop(name, None)


def test_code_and_preprocessing_travel_with_the_version(tmp_path: Path, write_version: Any) -> None:
    cls, src, artifacts = write_version("v1", 1.0)
    saved = save_model(cls(), tmp_path / "v1", code_paths=[src / "helpers.py"], artifacts=artifacts)
    assert saved.format == "python"
    assert saved.config == {
        "entry": "model.py:Model",
        "code": "code",
        "artifacts": "artifacts",
        "can_batch": True,
    }
    assert sorted(p.name for p in (tmp_path / "v1" / "code").iterdir()) == [
        "helpers.py",
        "model.py",
    ]
    assert (tmp_path / "v1" / MARKER).is_file()
    for path in (src, artifacts):  # the version does not depend on the user's files any more
        for file in path.iterdir():
            file.unlink()

    runtime = _open(tmp_path / "v1", dict(saved.config))
    runtime.load()
    out = runtime.predict(_frame())
    np.testing.assert_allclose(out["score"], _expected(_frame(), 1.0), rtol=0, atol=1e-12)
    assert runtime.metadata().platform == "python_class"
    assert not list((tmp_path / "v1").rglob("__pycache__")), "the artifact must stay unchanged"
    check_runtime(lambda: _open(tmp_path / "v1", dict(saved.config)), _frame())


def test_two_versions_with_the_same_module_names_do_not_clash(
    tmp_path: Path, write_version: Any
) -> None:
    before = {m for m in sys.modules if m.startswith("modelport_code_")}
    runtimes = []
    for name, factor in (("v1", 1.0), ("v2", 10.0)):
        cls, src, artifacts = write_version(name, factor)
        saved = save_pyclass(cls, tmp_path / name, [src / "helpers.py"], artifacts)
        runtime = _open(tmp_path / name, dict(saved.config))
        runtime.load()
        runtimes.append(runtime)
    v1, v2 = (r.predict(_frame())["score"] for r in runtimes)
    np.testing.assert_allclose(v1, _expected(_frame(), 1.0))
    np.testing.assert_allclose(v2, _expected(_frame(), 10.0))
    assert "helpers" not in sys.modules
    loaded = {m for m in sys.modules if m.startswith("modelport_code_")} - before
    assert len(loaded) == 2
    for runtime in runtimes:
        runtime.unload()
    assert not loaded & set(sys.modules)


def test_a_class_inside_a_package_ships_its_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pkg = tmp_path / "src" / "churnpkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "features.py").write_text("def double(x):\n    return x * 2\n")
    (pkg / "model.py").write_text(
        textwrap.dedent(
            """
            import numpy as np

            from .features import double


            class Doubler:
                def predict(self, inputs, params=None):
                    offset = (params or {}).get("offset", 0)
                    return double(np.asarray(inputs, dtype=float)) + offset
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    try:
        cls = importlib.import_module("churnpkg.model").Doubler
        saved = save_pyclass(cls, tmp_path / "version")
    finally:
        for name in [m for m in sys.modules if m.split(".")[0] == "churnpkg"]:
            del sys.modules[name]
    assert saved.config["entry"] == "churnpkg/model.py:Doubler"
    monkeypatch.syspath_prepend(str(tmp_path / "elsewhere"))  # the source tree is not needed
    (pkg / "features.py").write_text("raise RuntimeError('the stored copy must be used')\n")

    runtime = _open(tmp_path / "version", dict(saved.config))
    runtime.load()
    x = np.arange(6.0).reshape(3, 2)
    np.testing.assert_array_equal(runtime.predict(x), x * 2)
    np.testing.assert_array_equal(runtime.predict(x, {"offset": 1}), x * 2 + 1)
    assert not list((tmp_path / "version").rglob("__pycache__"))
    check_runtime(lambda: _open(tmp_path / "version", dict(saved.config)), x, x * 2)


def _write_entry(root: Path, code: str) -> dict[str, Any]:
    (root / "code").mkdir(parents=True)
    (root / "code" / "model.py").write_text(textwrap.dedent(code))
    return {"entry": "model.py:Model", "code": "code"}


def test_failures_in_user_code_are_modelport_errors(tmp_path: Path) -> None:
    config = _write_entry(tmp_path / "bad_import", "raise ImportError('no such thing')\n")
    with pytest.raises(ModelLoadError, match="no such thing"):
        _open(tmp_path / "bad_import", config).load()

    config = _write_entry(
        tmp_path / "bad_predict",
        """
        class Model:
            def predict(self, inputs):
                raise ValueError("cannot score")
        """,
    )
    runtime = _open(tmp_path / "bad_predict", config)
    runtime.load()
    with pytest.raises(PredictionError, match="cannot score"):
        runtime.predict(np.zeros((1, 1)))

    with pytest.raises(ArtifactNotFoundError, match=r"other\.py"):
        _open(tmp_path / "bad_predict", {"entry": "other.py:Model"}).load()
    with pytest.raises(ModelLoadError, match="Missing"):
        _open(tmp_path / "bad_predict", {"entry": "model.py:Missing"}).load()
    with pytest.raises(InvalidInputError, match="entry"):
        _open(tmp_path / "bad_predict", {"entry": "model.Model"}).load()


class _NoPredict:
    pass


class _Predicts:
    def predict(self, inputs: Any) -> Any:
        return inputs


def test_saving_refuses_what_cannot_be_rebuilt(tmp_path: Path) -> None:
    class Local:
        def predict(self, inputs: Any) -> Any:
            return inputs

    with pytest.raises(InvalidInputError, match="module-level"):
        save_pyclass(Local, tmp_path / "a")
    with pytest.raises(InvalidInputError, match="predict"):
        save_pyclass(_NoPredict, tmp_path / "b")
    save_pyclass(_Predicts, tmp_path / "c")
    with pytest.raises(ConflictError):
        save_pyclass(_Predicts, tmp_path / "c")
    with pytest.raises(InvalidInputError, match="does not exist"):
        save_pyclass(_Predicts, tmp_path / "d", code_paths=[tmp_path / "missing.py"])
