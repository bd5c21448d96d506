"""Serving fixtures: a real registry with small models, and the real app driven in process."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from starlette.testclient import TestClient

from modelport.api.registry import Registry
from modelport.core.model import ModelVersion
from modelport.core.settings import Settings
from modelport.runtime.base import Runtime
from modelport.serving.app import create_app
from modelport.serving.config import ServeConfig

COLUMNS = ["f0", "f1", "f2", "f3"]


@pytest.fixture(scope="session")
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(11)
    return pd.DataFrame(rng.normal(size=(200, 4)), columns=COLUMNS)


@pytest.fixture(scope="session")
def labels(frame: pd.DataFrame) -> np.ndarray:
    return (frame["f0"] - frame["f2"] > 0).astype(int).to_numpy()


@pytest.fixture(scope="session")
def classifier(frame: pd.DataFrame, labels: np.ndarray) -> Pipeline:
    return make_pipeline(StandardScaler(), LogisticRegression()).fit(frame, labels)


@pytest.fixture(scope="session")
def regressor(frame: pd.DataFrame) -> LinearRegression:
    x = frame.to_numpy().astype(np.float32)
    return LinearRegression().fit(x, x @ np.array([1.0, 2.0, -1.0, 0.5]))


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    reg = Registry.open(settings=Settings(home=tmp_path / "home"))
    try:
        yield reg
    finally:
        reg.close()


@pytest.fixture
def models(
    registry: Registry, classifier: Pipeline, regressor: LinearRegression, frame: pd.DataFrame
) -> Registry:
    """``clf:1`` (columns signature, @champion) and ``reg:1`` (a float32 [n, 4] tensor)."""
    registry.register(
        classifier, name="clf", input_example=frame.head(3), training_data=frame, alias="champion"
    )
    registry.register(
        regressor, name="reg", input_example=frame.head(3).to_numpy().astype(np.float32)
    )
    return registry


ClientFactory = Callable[..., AbstractContextManager[TestClient]]


def wait_ready(client: TestClient, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while client.get("/v2/health/ready").status_code != 200:
        assert time.monotonic() < deadline, client.get("/v2/repository/index").text
        time.sleep(0.02)


@pytest.fixture
def serve(registry: Registry) -> ClientFactory:
    """``with serve("clf@champion", max_queue=4) as client:`` — the app with its lifespan."""

    @contextmanager
    def factory(
        *refs: str, ready: bool = True, load: Any = None, **options: Any
    ) -> Iterator[TestClient]:
        config = ServeConfig(
            refs=refs, poll_interval_s=options.pop("poll_interval_s", 0.2), **options
        )

        def default_load(version: ModelVersion) -> Runtime:
            return registry.load(version.ref, threads=1)

        app = create_app(config, registry.get, load or default_load)
        with TestClient(app) as client:
            if ready:
                wait_ready(client)
            yield client

    return factory
