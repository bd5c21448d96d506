"""The verified ONNX fast path of scikit-learn versions.

scikit-learn spends most of a one-row prediction validating its input (~250 µs around a ~13 µs
LogisticRegression; ~2 ms for a HistGradientBoosting model), onnxruntime answers in ~20 µs. So a
scikit-learn version that converts gets a derived ONNX artifact (a *variant* stored with the same
version) which serves only once its outputs were verified equal to the original's on the input
example AND the reference sample of the version:

- labels identical, probabilities within ``ATOL`` (1e-5; float32 inference differs from
  scikit-learn's float64 by ~1e-7, so this leaves two orders of magnitude of headroom and is still
  far below any difference that could matter to a decision), other float outputs within
  ``ATOL + RTOL * |y|``; names, shapes and dtypes equal (``_verify``);
- a model that does not convert, or does not verify, keeps serving through scikit-learn and the
  failed variant records why.

``convert_sklearn_to_onnx`` converts (``_skl2onnx`` chooses the input layout and carries the
scikit-learn 1.9 HistGradientBoosting workaround), ``FastPathRuntime`` serves the result under the
scikit-learn output contract, ``verify_variant`` compares, ``build_onnx_variant`` does all three
and returns the draft the registry records.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from modelport.core.errors import MissingExtraError, ModelportError, UnsupportedFormatError
from modelport.core.examples import decode
from modelport.core.model import ModelVersion
from modelport.core.signature import Signature
from modelport.registry.service import VariantDraft
from modelport.runtime import _skl2onnx
from modelport.runtime._fastpath_runtime import FastPathRuntime
from modelport.runtime._optional import distribution_version, require
from modelport.runtime._verify import Verification, rows_of, verify_variant
from modelport.runtime.base import LoadContext, SaveResult
from modelport.runtime.onnx import save_onnx
from modelport.runtime.sklearn import SklearnRuntime, load_estimator

__all__ = [
    "ATOL",
    "KIND",
    "RTOL",
    "FastPathRuntime",
    "Verification",
    "available",
    "build_onnx_variant",
    "convert_sklearn_to_onnx",
    "verification_samples",
    "verify_variant",
]

KIND = "onnx"
ATOL = 1e-5
RTOL = 1e-5
MAX_REASON = 300


def available() -> bool:
    """Whether this interpreter can serve an ONNX variant (onnxruntime importable)."""
    return importlib.util.find_spec("onnxruntime") is not None


def _short(exc: BaseException) -> str:
    """The first line of an error, bounded (skl2onnx errors can dump whole attribute tables)."""
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else type(exc).__name__
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 1] + "…"


def _outputs(model: Any, proto: Any) -> tuple[dict[str, str], dict[str, str]]:
    """ONNX output → sklearn output name, and the dtype the scikit-learn runtime returns."""
    names = [o.name for o in proto.graph.output]
    classes = getattr(model, "classes_", None)
    if classes is None:
        return {names[0]: "predictions"}, {"predictions": "<f8"}
    outputs = {names[0]: "predictions"}
    dtypes = {"predictions": np.asarray(classes).dtype.str}
    if hasattr(model, "predict_proba") and len(names) > 1:
        outputs[names[1]] = "probabilities"
        dtypes["probabilities"] = "<f8"
    return outputs, dtypes


def convert_sklearn_to_onnx(
    model_dir: Path,
    config: Mapping[str, Any],
    signature: Signature | None,
    trusted_types: Iterable[str],
    dest_dir: Path,
) -> SaveResult:
    """Convert the scikit-learn artifact in ``model_dir`` into ``dest_dir/model.onnx``.

    The model loads under the version's trust settings. The returned config is the variant's
    runtime config (``FastPathRuntime``). Raises ``MissingExtraError`` without skl2onnx/onnx
    and ``UnsupportedFormatError`` when skl2onnx cannot convert the model.
    """
    require("skl2onnx", "onnx", why="converting a scikit-learn model to ONNX")
    ctx = LoadContext(
        path=model_dir,
        format="sklearn",
        config=config,
        trusted_types=tuple(trusted_types),
        trust_pickle=bool(config.get("trust_pickle")),
    )
    model = load_estimator(ctx)
    estimator = f"{type(model).__module__}.{type(model).__qualname__}"
    failure: Exception | None = None
    for layout in _skl2onnx.candidate_layouts(signature):
        try:
            proto = _skl2onnx.convert(model, layout)
            break
        except MissingExtraError:
            raise
        except Exception as exc:  # skl2onnx raises RuntimeError/TypeError/... per converter
            failure = exc
    else:
        detail = _short(failure) if failure is not None else "no input layout fits"
        raise UnsupportedFormatError(
            f"skl2onnx cannot convert the {type(model).__name__}: {detail}"
        ) from failure
    save_onnx(proto, dest_dir)
    outputs, dtypes = _outputs(model, proto)
    runtime_config: dict[str, Any] = {
        "file": "model.onnx",
        "serves_as": "sklearn",
        "platform": f"sklearn_{config.get('serialization', 'skops')}",
        "estimator": estimator,
        "input": layout.to_config(),
        "outputs": outputs,
        "dtypes": dtypes,
        "opset": _skl2onnx.target_opset(),
        "converter": f"skl2onnx {distribution_version('skl2onnx')}",
    }
    classes = getattr(model, "classes_", None)
    if classes is not None:
        runtime_config["classes"] = np.asarray(classes).tolist()
    return SaveResult(format="onnx", config=runtime_config, framework_packages=("onnxruntime",))


def _input_columns(sample: Any, signature: Signature | None) -> Any:
    """A decoded reference sample restricted to the signature's columns (it may hold more)."""
    if signature is None or signature.kind != "columns" or not hasattr(sample, "columns"):
        return sample
    missing = [c for c in signature.input_names if c not in sample.columns]
    if missing:
        raise UnsupportedFormatError(f"the reference sample lacks input columns {missing[:5]}")
    return sample[list(signature.input_names)]


def verification_samples(version: ModelVersion) -> tuple[list[tuple[str, Any]], list[str]]:
    """The (name, input) pairs a variant is verified on, and what is missing of the two."""
    found: list[tuple[str, Any]] = []
    missing: list[str] = []
    if version.input_example is not None:
        found.append(("input example", decode(version.input_example)))
    else:
        missing.append("no input example (register with input_example=...)")
    sample = version.profile.sample if version.profile is not None else None
    if sample:
        try:
            found.append(("reference sample", _input_columns(decode(sample), version.signature)))
        except ModelportError as exc:
            missing.append(str(exc))
    else:
        missing.append("no reference sample (register with training_data=...)")
    return found, missing


def _failed(reason: str, result: Verification | None = None) -> VariantDraft:
    return VariantDraft(
        kind=KIND,
        status="failed",
        reason=reason[: 2 * MAX_REASON],
        tolerance=ATOL if result is not None else None,
        max_abs_diff=result.max_abs_diff if result is not None else None,
        checked_rows=result.rows if result is not None else 0,
    )


def build_onnx_variant(version: ModelVersion, model_dir: Path, dest_dir: Path) -> VariantDraft:
    """Convert and verify the scikit-learn ``version`` (its files in ``model_dir``).

    Returns a verified draft whose files are in ``dest_dir``, or a failed one saying why; only
    errors of modelport itself (not of the model) propagate.
    """
    if version.format != "sklearn":
        raise UnsupportedFormatError(
            f"{version.ref} is a {version.format} model; the ONNX fast path is built for "
            "scikit-learn versions"
        )
    samples, missing = verification_samples(version)
    if missing:
        return _failed("not verifiable: " + "; ".join(missing))
    try:
        saved = convert_sklearn_to_onnx(
            model_dir, version.runtime_config, version.signature, version.trusted_types, dest_dir
        )
    except MissingExtraError as exc:
        return _failed(str(exc))
    except ModelportError as exc:
        return _failed(f"conversion failed: {_short(exc)}")
    config = dict(version.runtime_config)
    ctx = LoadContext(
        path=model_dir,
        format="sklearn",
        config=config,
        signature=version.signature,
        trusted_types=version.trusted_types,
        trust_pickle=bool(config.get("trust_pickle")),
        threads=1,
    )
    original = SklearnRuntime(ctx)
    candidate = FastPathRuntime(
        LoadContext(path=dest_dir, format="sklearn", config=saved.config, threads=1)
    )
    try:
        original.load()
        try:
            candidate.load()
        except ModelportError as exc:
            return _failed(f"onnxruntime cannot run the converted model: {_short(exc)}")
        result = verify_variant(
            original, candidate, [s for _, s in samples], ATOL, RTOL, [n for n, _ in samples]
        )
    finally:
        candidate.unload()
        original.unload()
    if not result.ok:
        return _failed(f"verification failed {result.reason}", result)
    counts = ", ".join(f"{name} {rows_of(s)}" for name, s in samples)
    return VariantDraft(
        kind=KIND,
        status="verified",
        reason=f"outputs equal to scikit-learn on {result.rows} rows ({counts})",
        source=dest_dir,
        tolerance=ATOL,
        max_abs_diff=result.max_abs_diff,
        checked_rows=result.rows,
        runtime_config={**saved.config, "verification": {"atol": ATOL, "rtol": RTOL}},
    )
