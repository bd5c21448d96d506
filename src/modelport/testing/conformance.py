"""``check_runtime``: the conformance check every runtime passes, built-in or yours.

Like scikit-learn's ``check_estimator``: call it in a test with a factory for your runtime and an
example input; each failed check raises ``AssertionError`` saying which rule was broken.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from modelport.core.errors import ModelportError
from modelport.runtime.base import Runtime, RuntimeMetadata

__all__ = ["check_runtime"]


def _is_frame(value: object) -> bool:
    return hasattr(value, "columns") and hasattr(value, "dtypes") and hasattr(value, "iloc")


def _check(condition: object, message: str) -> None:
    """``assert`` that survives ``python -O``."""
    if not condition:
        raise AssertionError(message)


def _rows(value: Any) -> int:
    if _is_frame(value):
        return len(value)
    if isinstance(value, Mapping):
        counts = {len(np.asarray(v)) for v in value.values()}
        _check(len(counts) == 1, f"the example's arrays differ in length: {sorted(counts)}")
        return counts.pop()
    return len(np.asarray(value))


def _row(value: Any, i: int) -> Any:
    if _is_frame(value):
        return value.iloc[i : i + 1]
    if isinstance(value, Mapping):
        return {k: np.asarray(v)[i : i + 1] for k, v in value.items()}
    return np.asarray(value)[i : i + 1]


def _arrays(output: Any, what: str) -> dict[str, np.ndarray]:
    """The output as named arrays; asserts it is an array, a dict of arrays or a DataFrame."""
    if _is_frame(output):
        return {str(c): output[c].to_numpy() for c in output.columns}
    if isinstance(output, Mapping):
        bad = sorted(str(k) for k, v in output.items() if not isinstance(v, np.ndarray))
        _check(not bad, f"{what}: outputs {bad} are not numpy arrays")
        return {str(k): v for k, v in output.items()}
    _check(
        isinstance(output, np.ndarray),
        (
            f"{what} returned a {type(output).__name__}; return an ndarray, a dict of ndarrays "
            "or a DataFrame"
        ),
    )
    return {"": output}


def _assert_close(
    actual: dict[str, np.ndarray], expected: dict[str, np.ndarray], what: str, atol: float
) -> None:
    _check(
        actual.keys() == expected.keys(),
        (f"{what}: outputs {sorted(actual)} differ from {sorted(expected)}"),
    )
    for name, want in expected.items():
        got = actual[name]
        label = f"{what}, output {name!r}" if name else what
        _check(got.shape == want.shape, f"{label}: shape {got.shape} != {want.shape}")
        if want.dtype.kind in "biufc" and got.dtype.kind in "biufc":
            ok = bool(np.allclose(got, want, rtol=0.0, atol=atol, equal_nan=True))
        else:
            ok = bool(np.array_equal(got, want))
        _check(ok, f"{label}: values differ (atol={atol})")


def _check_metadata(runtime: Runtime, metadata: RuntimeMetadata) -> None:
    _check(isinstance(metadata, RuntimeMetadata), "metadata() must return a RuntimeMetadata")
    _check(
        metadata.format == runtime.format,
        (f"metadata().format {metadata.format!r} != runtime.format {runtime.format!r}"),
    )
    for field in ("format", "platform", "framework_version"):
        value = getattr(metadata, field)
        _check(isinstance(value, str) and value, f"metadata().{field} must be a non-empty string")
    _check(isinstance(metadata.can_batch, bool), "metadata().can_batch must be a bool")
    _check(all(isinstance(o, str) for o in metadata.outputs), "metadata().outputs must be strings")


def _predict(runtime: Runtime, inputs: Any, what: str) -> dict[str, np.ndarray]:
    return _arrays(runtime.predict(inputs), what)


def _assert_refuses(runtime: Runtime, inputs: Any, when: str) -> None:
    try:
        runtime.predict(inputs)
    except ModelportError:
        return
    except Exception as exc:
        raise AssertionError(
            f"predict() {when} raised {type(exc).__name__}; raise a ModelportError"
        ) from exc
    raise AssertionError(f"predict() {when} must raise a ModelportError")


def check_runtime(
    runtime_factory: Callable[[], Runtime],
    example_input: Any,
    expected: Any = None,
    atol: float = 1e-6,
) -> None:
    """Check the runtime contract on ``example_input`` (a DataFrame, array or dict of arrays).

    ``expected``, when given, is what the model must answer for the example (within ``atol``).
    """
    runtime = runtime_factory()
    _check(isinstance(runtime, Runtime), "the factory must return an object with the Runtime API")
    _check(runtime.loaded is False, "a new runtime must not be loaded: constructors do no I/O")
    _assert_refuses(runtime, example_input, "before load()")
    runtime.load()
    _check(runtime.loaded is True, "load() must set loaded")
    metadata = runtime.metadata()
    _check_metadata(runtime, metadata)

    rows = _rows(example_input)
    raw = runtime.predict(example_input)
    first = _arrays(raw, "predict(example)")
    for name, array in first.items():
        _check(
            array.ndim >= 1 and array.shape[0] == rows,
            (
                f"output {name!r} has shape {array.shape}; its first dimension must be the "
                f"{rows} input rows"
            ),
        )
    if isinstance(raw, Mapping) and metadata.outputs:
        _check(
            set(first) == set(metadata.outputs),
            (f"outputs {sorted(first)} differ from metadata().outputs {sorted(metadata.outputs)}"),
        )
    if expected is not None:
        want = _arrays(expected, "expected")
        if set(want) == {""} and len(first) == 1:  # a bare array for a single named output
            want = {next(iter(first)): want[""]}
        _assert_close(first, want, "predict(example) vs expected", atol)
    again = _predict(runtime, example_input, "a second predict(example)")
    _assert_close(again, first, "predictions are not deterministic across calls", atol)

    if metadata.can_batch and rows > 1:
        parts = [_predict(runtime, _row(example_input, i), f"row {i}") for i in range(rows)]
        joined = {k: np.concatenate([p[k] for p in parts]) for k in first}
        _assert_close(joined, first, "predicting row by row differs from the batch", atol)

    runtime.unload()
    _check(runtime.loaded is False, "unload() must clear loaded")
    _assert_refuses(runtime, example_input, "after unload()")

    runtime.load()
    _check(runtime.loaded is True, "load() after unload() must set loaded again")
    reloaded = _predict(runtime, example_input, "predict(example) after reload")
    _assert_close(reloaded, first, "predictions after unload() and load() differ", atol)
    runtime.unload()
