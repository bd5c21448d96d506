"""Imports flow one way (ARCHITECTURE.md); web frameworks stay in serving/ops; core does no I/O."""

from __future__ import annotations

import ast
from pathlib import Path

import modelport

SRC = Path(modelport.__file__).parent

# What each layer may import, besides itself and third-party packages.
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "registry": {"core"},
    "monitoring": {"core"},
    "runtime": {"registry", "core"},
    "packaging": {"registry", "core"},
    "testing": {"runtime", "core"},
    "rollout": {"registry", "monitoring", "core"},
    "serving": {"runtime", "packaging", "registry", "monitoring", "rollout", "core"},
    "ops": {"serving", "runtime", "packaging", "registry", "monitoring", "rollout", "core"},
    "api": {"ops", "serving", "runtime", "packaging", "registry", "monitoring", "rollout", "core"},
    "cli": {
        "api",
        "ops",
        "serving",
        "runtime",
        "packaging",
        "registry",
        "monitoring",
        "rollout",
        "core",
        "testing",
    },
}
WEB = {"starlette", "fastapi", "uvicorn", "grpc", "httpx"}
WEB_ALLOWED = {"serving", "ops", "cli"}
CORE_FORBIDDEN = {"subprocess", "socket", "sqlalchemy", "boto3", "requests", "shutil"}


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def _layer(path: Path) -> str | None:
    rel = path.relative_to(SRC).parts
    return rel[0] if len(rel) > 1 else None


def test_every_layer_is_known() -> None:
    layers = {p.name for p in SRC.iterdir() if p.is_dir() and not p.name.startswith("_")}
    assert layers <= set(ALLOWED), f"unknown layer(s): {layers - set(ALLOWED)}"


def test_imports_point_one_way() -> None:
    problems = []
    for path in sorted(SRC.rglob("*.py")):
        layer = _layer(path)
        if layer is None:
            continue
        for name in _imports(path):
            parts = name.split(".")
            if parts[0] == "modelport" and len(parts) > 1:
                target = parts[1]
                if target != layer and target in ALLOWED and target not in ALLOWED[layer]:
                    problems.append(f"{path.relative_to(SRC)} imports {name}")
            elif parts[0] in WEB and layer not in WEB_ALLOWED:
                problems.append(f"{path.relative_to(SRC)} imports web framework {name}")
            elif layer == "core" and parts[0] in CORE_FORBIDDEN:
                problems.append(f"{path.relative_to(SRC)} (core) imports I/O module {name}")
    assert not problems, "layering violations:\n" + "\n".join(problems)


def test_init_files_hold_only_imports_and_all() -> None:
    for path in SRC.rglob("__init__.py"):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            ok = isinstance(node, ast.Import | ast.ImportFrom | ast.Expr)
            if isinstance(node, ast.Assign):
                ok = all(
                    isinstance(t, ast.Name) and t.id in ("__all__", "__version__")
                    for t in node.targets
                )
            assert ok, f"{path.relative_to(SRC)} holds more than imports and __all__"
