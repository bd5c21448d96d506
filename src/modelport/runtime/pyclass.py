"""Python classes shipped with their code: ``load(self, artifacts_dir)`` (optional) and ``predict``.

Runtime config (also written to ``modelport-python.yaml`` next to the code)::

    {"entry": "model.py:ClassName", "code": "code", "artifacts": "artifacts", "can_batch": true}

``load()`` imports the entry module from the version's own directory under a module name unique to
that directory and code, so two versions of ``model.py`` never share a module; the code directory
is on ``sys.path`` only while the entry module is imported (import helper modules at the top of
the entry module, not inside ``predict``). The class is instantiated with no arguments and its
``load(artifacts_dir)`` is called. This is also how preprocessing code travels with a model.

Output contract: whatever ``predict(inputs)`` (or ``predict(inputs, params)`` when it takes a
second argument) returns; lists become arrays. ``modelport.testing.check_runtime`` checks it.
``ctx.threads`` caps OpenMP/BLAS threads around each call, as for scikit-learn.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import platform
import shutil
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import yaml

from modelport.core.errors import (
    ArtifactNotFoundError,
    ConflictError,
    InvalidInputError,
    ModelLoadError,
    ModelportError,
    PredictionError,
)
from modelport.core.paths import safe_relpath
from modelport.runtime.base import LoadContext, RuntimeMetadata, SaveResult
from modelport.runtime.threads import ThreadLimit

__all__ = ["MARKER", "PythonClassRuntime", "save_pyclass"]

MARKER = "modelport-python.yaml"
_IMPORT_LOCK = threading.Lock()  # sys.path and sys.modules are process-wide


def _entry(config: Mapping[str, Any]) -> tuple[str, str]:
    entry = config.get("entry")
    if not isinstance(entry, str) or entry.count(":") != 1:
        raise InvalidInputError(
            f"python runtime config 'entry' must look like 'model.py:ClassName', not {entry!r}"
        )
    file, _, qualname = entry.partition(":")
    if not file.endswith(".py") or not qualname:
        raise InvalidInputError(f"python entry {entry!r} must name a .py file and a class")
    return safe_relpath(file), qualname


def _top_level_names(code_dir: Path) -> set[str]:
    return {p.stem if p.suffix == ".py" else p.name for p in code_dir.iterdir()} - {"__pycache__"}


@contextmanager
def _code_on_path(code_dir: Path) -> Iterator[None]:
    """Import from ``code_dir`` alone: its module names are cleared before and after, and no
    bytecode is written into it (the directory is a digest-verified artifact)."""
    local = _top_level_names(code_dir)

    def ours(name: str) -> bool:
        return name.split(".")[0] in local

    with _IMPORT_LOCK:
        saved = {name: mod for name, mod in sys.modules.items() if ours(name)}
        for name in saved:
            del sys.modules[name]
        sys.path.insert(0, str(code_dir))
        write_bytecode, sys.dont_write_bytecode = sys.dont_write_bytecode, True
        try:
            yield
        finally:
            sys.dont_write_bytecode = write_bytecode
            if str(code_dir) in sys.path:
                sys.path.remove(str(code_dir))
            for name in [name for name in sys.modules if ours(name)]:
                del sys.modules[name]
            sys.modules.update(saved)


def _import(module_file: Path, code_dir: Path, unique: str) -> ModuleType:
    rel = module_file.relative_to(code_dir)
    with _code_on_path(code_dir):
        if len(rel.parts) > 1:  # inside a package: import it by its dotted name
            return importlib.import_module(".".join((*rel.parts[:-1], rel.stem)))
        spec = importlib.util.spec_from_file_location(unique, module_file)
        if spec is None or spec.loader is None:
            raise ModelLoadError(f"cannot import {module_file}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[unique] = module  # classes look their module up while being defined
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[unique]
            raise
        return module


class PythonClassRuntime:
    format = "python"

    def __init__(self, ctx: LoadContext) -> None:
        self.ctx = ctx
        self._obj: Any = None
        self._module_name: str | None = None
        self._takes_params = False
        self._limit = ThreadLimit(ctx.threads)

    @property
    def loaded(self) -> bool:
        return self._obj is not None

    def load(self) -> None:
        file, qualname = _entry(self.ctx.config)
        code_dir = self.ctx.path / safe_relpath(str(self.ctx.config.get("code", "code")))
        module_file = code_dir / file
        if not module_file.is_file():
            raise ArtifactNotFoundError(
                f"python entry file {file!r} is missing from {code_dir}; re-register the version"
            )
        key = f"{self.ctx.path.resolve()}\0".encode() + module_file.read_bytes()
        unique = f"modelport_code_{hashlib.sha256(key).hexdigest()[:16]}_{module_file.stem}"
        artifacts = self.ctx.path / safe_relpath(str(self.ctx.config.get("artifacts", "artifacts")))
        try:
            module = _import(module_file, code_dir, unique)
            cls: Any = module
            for part in qualname.split("."):
                cls = getattr(cls, part)
            obj = cls()
            if callable(getattr(obj, "load", None)):
                obj.load(artifacts)
        except ModelportError:
            raise
        except Exception as exc:  # the user's code may raise anything while importing or loading
            raise ModelLoadError(
                f"could not load {file}:{qualname} from {code_dir}: {exc}"
            ) from exc
        if not callable(getattr(obj, "predict", None)):
            raise ModelLoadError(f"{file}:{qualname} has no predict(inputs) method")
        params = inspect.signature(obj.predict).parameters
        self._takes_params = len(params) >= 2 or "params" in params
        self._limit.start()
        self._module_name = unique
        self._obj = obj

    def predict(self, inputs: Any, params: Mapping[str, Any] | None = None) -> Any:
        obj = self._obj
        if obj is None:
            raise PredictionError(
                f"python model at {self.ctx.path} is not loaded; call load() first"
            )
        try:
            with self._limit.limit():
                out = obj.predict(inputs, params) if self._takes_params else obj.predict(inputs)
        except ModelportError:
            raise
        except Exception as exc:  # the user's predict may raise anything
            raise PredictionError(
                f"python model {self.ctx.config.get('entry')} failed to predict: {exc}"
            ) from exc
        return np.asarray(out) if isinstance(out, list | tuple) else out

    def unload(self) -> None:
        self._obj = None
        if self._module_name is not None:
            sys.modules.pop(self._module_name, None)
            self._module_name = None

    def metadata(self) -> RuntimeMetadata:
        outputs = self.ctx.config.get("outputs", ())
        return RuntimeMetadata(
            format=self.format,
            platform="python_class",
            framework_version=platform.python_version(),
            can_batch=bool(self.ctx.config.get("can_batch", True)),
            outputs=tuple(str(o) for o in outputs),
            extra={"entry": self.ctx.config.get("entry")},
        )


def _copy(src: Path, dest: Path) -> None:
    if dest.exists():
        raise ConflictError(f"{dest} exists already; two code paths have the name {src.name!r}")
    if src.is_dir():
        shutil.copytree(src, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    elif src.is_file():
        shutil.copy2(src, dest)
    else:
        raise InvalidInputError(f"code path {src} does not exist")


def save_pyclass(
    obj_or_class: Any,
    dest_dir: Path | str,
    code_paths: Iterable[Path | str] | None = None,
    artifacts: Path | str | None = None,
) -> SaveResult:
    """Copy the class's source (its whole top-level package if it has one), ``code_paths`` and
    an ``artifacts`` directory into ``dest_dir``; the class is rebuilt with no arguments at load.
    """
    cls = obj_or_class if isinstance(obj_or_class, type) else type(obj_or_class)
    name = f"{cls.__module__}.{cls.__qualname__}"
    if "<locals>" in cls.__qualname__ or not callable(getattr(cls, "predict", None)):
        raise InvalidInputError(f"{name} must be a module-level class with a predict() method")
    try:
        source = inspect.getsourcefile(cls)
    except TypeError:
        source = None
    if source is None:
        raise InvalidInputError(
            f"cannot find the source file of {name} (defined in a notebook or a shell?); "
            "move the class into a .py file and import it from there"
        )
    dest = Path(dest_dir)
    code = dest / "code"
    if code.exists() or (dest / "artifacts").exists():
        raise ConflictError(f"{dest} holds a saved model already; save into a new directory")
    code.mkdir(parents=True)
    src = Path(source)
    top = sys.modules[cls.__module__.split(".")[0]]
    if "." in cls.__module__ and getattr(top, "__path__", None):
        package_dir = Path(next(iter(top.__path__)))
        _copy(package_dir, code / package_dir.name)
        entry = src.relative_to(package_dir.parent).as_posix()
    else:
        _copy(src, code / src.name)
        entry = src.name
    for path in code_paths or ():
        _copy(Path(path), code / Path(path).name)
    config: dict[str, Any] = {"entry": f"{entry}:{cls.__qualname__}", "code": "code"}
    if artifacts is not None:
        if not Path(artifacts).is_dir():
            raise InvalidInputError(f"artifacts {artifacts} must be a directory")
        _copy(Path(artifacts), dest / "artifacts")
        config["artifacts"] = "artifacts"
    config["can_batch"] = bool(getattr(cls, "can_batch", True))
    (dest / MARKER).write_text(yaml.safe_dump(config, sort_keys=True))
    return SaveResult(format="python", config=config)
