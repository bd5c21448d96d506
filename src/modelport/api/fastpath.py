"""The ONNX fast path in the Python API: build and record a variant, choose one when loading.

Building never raises for the model's sake: what cannot be converted or verified is recorded as a
failed variant with its reason. Choosing (``variant=``):

- ``"original"``: the framework runtime;
- ``"onnx"``: the verified ONNX variant, or an error saying why there is none;
- ``"auto"``: the verified variant when there is one and onnxruntime imports, else the original.
  A variant whose files fail verification is an error, never a silent fallback.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Literal

from modelport.core.errors import (
    ArtifactNotFoundError,
    InvalidInputError,
    MissingExtraError,
    ModelLoadError,
)
from modelport.core.model import ModelVersion, Variant
from modelport.registry.service import RegistryService, VariantDraft
from modelport.runtime.base import LoadContext, Runtime
from modelport.runtime.fastpath import KIND, FastPathRuntime, available, build_onnx_variant

__all__ = [
    "VARIANTS",
    "VariantChoice",
    "build_and_record",
    "build_at_registration",
    "load_variant",
    "serving_summary",
]

VariantChoice = Literal["auto", "original", "onnx"]
VARIANTS: tuple[VariantChoice, ...] = ("auto", "original", "onnx")
_log = logging.getLogger(__name__)


def build_and_record(
    service: RegistryService, version: ModelVersion, model_dir: Path
) -> ModelVersion:
    """Convert, verify and record the ONNX variant of ``version`` (files in ``model_dir``)."""
    with tempfile.TemporaryDirectory(prefix="modelport-fastpath-") as tmp:
        draft = build_onnx_variant(version, model_dir, Path(tmp) / "variant")
        return service.add_variant(version, draft)


def build_at_registration(
    service: RegistryService, version: ModelVersion, model_dir: Path
) -> ModelVersion:
    """``build_and_record`` that never fails the registration: an unexpected error is recorded
    as a failed variant (or, if even that fails, logged)."""
    try:
        return build_and_record(service, version, model_dir)
    except Exception as exc:  # registration must not fail because the fast path did
        _log.warning("building the fast path of %s failed: %s", version.ref, exc, exc_info=True)
        reason = f"building the fast path failed: {type(exc).__name__}: {exc}"[:600]
        try:
            return service.add_variant(version, VariantDraft(KIND, "failed", reason))
        except Exception:  # the store itself is failing; the version is registered already
            _log.warning("could not record the failed fast path of %s", version.ref, exc_info=True)
            return version


def _chosen(version: ModelVersion, variant: str) -> Variant | None:
    if variant not in VARIANTS:
        raise InvalidInputError(f"variant must be one of {', '.join(VARIANTS)}, not {variant!r}")
    if variant == "original":
        return None
    found = version.variant(KIND)
    if variant == "auto":
        return found if found is not None and found.verified and available() else None
    if found is None or not found.verified:
        state = "none was built" if found is None else f"it failed: {found.reason}"
        raise ArtifactNotFoundError(
            f"{version.ref} has no verified onnx variant ({state}); load variant='original' "
            f"or build one with `modelport models fastpath {version.ref}`"
        )
    if not available():
        raise MissingExtraError("onnxruntime", "onnx")
    return found


def load_variant(
    service: RegistryService, version: ModelVersion, variant: str, threads: int | None
) -> Runtime | None:
    """The loaded variant runtime ``variant`` selects, or None for the original."""
    chosen = _chosen(version, variant)
    if chosen is None:
        return None
    path = service.materialize_variant(version, chosen.kind)
    runtime = FastPathRuntime(
        LoadContext(
            path=path,
            format=version.format,
            config=chosen.runtime_config,
            signature=version.signature,
            threads=threads,
        )
    )
    try:
        runtime.load()
    except (ModelLoadError, MissingExtraError) as exc:
        if variant != "auto":
            raise
        _log.warning(
            "%s: serving scikit-learn, the onnx variant does not load: %s", version.ref, exc
        )
        return None
    return runtime


def serving_summary(version: ModelVersion) -> dict[str, str]:
    """What ``load(variant="auto")`` serves here and why, for people (``models show``)."""
    framework = "scikit-learn" if version.format == "sklearn" else version.format
    found = version.variant(KIND)
    if found is not None and found.verified:
        if not available():
            text = (
                f"{framework} (onnx fast path verified, but onnxruntime is not installed here: "
                "pip install 'modelport[onnx]')"
            )
            return {"variant": "original", "summary": text}
        diff = f"{found.max_abs_diff:.2g}" if found.max_abs_diff is not None else "-"
        tol = f"{found.tolerance:g}" if found.tolerance is not None else "-"
        text = f"onnx fast path (verified on {found.checked_rows} rows, max |Δ| {diff} ≤ {tol})"
        return {"variant": KIND, "summary": text}
    if found is not None:
        return {"variant": "original", "summary": f"{framework} (fast path failed: {found.reason})"}
    if version.format == "sklearn":
        text = (
            f"{framework} (no fast path; build one with `modelport models fastpath {version.ref}`)"
        )
        return {"variant": "original", "summary": text}
    return {"variant": "original", "summary": framework}
