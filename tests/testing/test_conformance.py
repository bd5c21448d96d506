from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import pytest

from modelport.core.errors import PredictionError
from modelport.runtime.base import RuntimeMetadata
from modelport.testing import check_runtime


class Doubler:
    """A well-behaved runtime: doubles its input."""

    format = "double"
    can_batch = True

    def __init__(self) -> None:
        self._factor: float | None = None

    @property
    def loaded(self) -> bool:
        return self._factor is not None

    def load(self) -> None:
        self._factor = 2.0

    def unload(self) -> None:
        self._factor = None

    def predict(self, inputs: Any, params: Mapping[str, Any] | None = None) -> Any:
        if self._factor is None:
            raise PredictionError("not loaded")
        return {"doubled": self._compute(np.asarray(inputs, dtype=float) * self._factor)}

    def _compute(self, values: np.ndarray) -> np.ndarray:
        return values

    def metadata(self) -> RuntimeMetadata:
        return RuntimeMetadata(
            format=self.format,
            platform="test_double",
            framework_version="1.0",
            can_batch=self.can_batch,
            outputs=("doubled",),
        )


X = np.arange(12.0).reshape(4, 3)


def test_a_conforming_runtime_passes() -> None:
    check_runtime(Doubler, X, {"doubled": X * 2})
    check_runtime(Doubler, X, X * 2)  # a bare array for the single output


def test_frames_and_dicts_are_valid_examples() -> None:
    class FrameRuntime(Doubler):
        def predict(self, inputs: Any, params: Mapping[str, Any] | None = None) -> Any:
            super().predict(0)
            return pd.DataFrame({"total": np.asarray(inputs["a"]) + np.asarray(inputs["b"])})

        def metadata(self) -> RuntimeMetadata:
            return RuntimeMetadata("double", "test_frame", "1.0", can_batch=True)

    frame = pd.DataFrame({"a": [1, 2, 3], "b": [4, 5, 6]})
    check_runtime(FrameRuntime, frame, {"total": np.asarray([5, 7, 9])})
    check_runtime(FrameRuntime, {"a": np.asarray([1, 2]), "b": np.asarray([3, 4])})


def _fails(runtime: type[Any], message: str, expected: Any = None) -> None:
    with pytest.raises(AssertionError, match=message):
        check_runtime(runtime, X, expected)


def test_constructors_must_not_load() -> None:
    class Eager(Doubler):
        def __init__(self) -> None:
            super().__init__()
            self.load()

    _fails(Eager, "constructors do no I/O")


def test_load_must_set_loaded() -> None:
    class Forgetful(Doubler):
        @property
        def loaded(self) -> bool:
            return False

    _fails(Forgetful, "load\\(\\) must set loaded")


def test_metadata_must_be_complete() -> None:
    class Anonymous(Doubler):
        def metadata(self) -> RuntimeMetadata:
            return RuntimeMetadata("double", "test_double", "", can_batch=True)

    _fails(Anonymous, "framework_version must be a non-empty string")

    class Misnamed(Doubler):
        def metadata(self) -> RuntimeMetadata:
            return RuntimeMetadata("other", "test_double", "1.0", can_batch=True)

    _fails(Misnamed, "metadata\\(\\).format 'other' != runtime.format 'double'")


def test_outputs_must_be_arrays_with_one_row_per_input_row() -> None:
    class Lists(Doubler):
        def predict(self, inputs: Any, params: Mapping[str, Any] | None = None) -> Any:
            super().predict(inputs)
            return [1.0] * len(inputs)

    _fails(Lists, "returned a list")

    class Summary(Doubler):
        def _compute(self, values: np.ndarray) -> np.ndarray:
            return values.sum(axis=0)

    _fails(Summary, "first dimension must be the 4 input rows")

    class Undocumented(Doubler):
        def metadata(self) -> RuntimeMetadata:
            return RuntimeMetadata("double", "t", "1.0", can_batch=True, outputs=("other",))

    _fails(Undocumented, "differ from metadata\\(\\).outputs")


def test_predictions_must_match_the_expected_ones() -> None:
    _fails(Doubler, "values differ", {"doubled": X * 3})
    _fails(Doubler, "outputs \\['doubled'\\] differ", {"tripled": X * 3})


def test_predictions_must_be_deterministic() -> None:
    class Noisy(Doubler):
        def _compute(self, values: np.ndarray) -> np.ndarray:
            return values + np.random.default_rng().normal(size=values.shape)

    _fails(Noisy, "not deterministic")


def test_batches_must_equal_rows_predicted_one_by_one() -> None:
    class Centering(Doubler):
        def _compute(self, values: np.ndarray) -> np.ndarray:
            return values - values.mean(axis=0)

    _fails(Centering, "row by row differs from the batch")

    class CenteringWithoutBatching(Centering):
        can_batch = False

    check_runtime(CenteringWithoutBatching, X)


def test_predict_when_not_loaded_must_raise_a_modelport_error() -> None:
    class Crashes(Doubler):
        def predict(self, inputs: Any, params: Mapping[str, Any] | None = None) -> Any:
            return {"doubled": np.asarray(inputs) * self._factor}  # type: ignore[operator]

    _fails(Crashes, "before load\\(\\) raised TypeError; raise a ModelportError")

    class Lingers(Doubler):
        def unload(self) -> None:
            self._lingering = self._factor
            super().unload()

        def predict(self, inputs: Any, params: Mapping[str, Any] | None = None) -> Any:
            if self._factor is None and getattr(self, "_lingering", None) is not None:
                return {"doubled": np.asarray(inputs, dtype=float) * 2}
            return super().predict(inputs, params)

    _fails(Lingers, "after unload\\(\\) must raise a ModelportError")


def test_a_runtime_must_load_again_after_unload() -> None:
    class OneShot(Doubler):
        loads = 0

        def load(self) -> None:
            self.loads += 1
            if self.loads == 1:
                super().load()

    _fails(OneShot, "load\\(\\) after unload\\(\\) must set loaded again")
