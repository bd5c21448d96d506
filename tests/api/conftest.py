from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from modelport.api.registry import Registry
from modelport.core.settings import Settings


@pytest.fixture(params=["embedded", "team"])
def registry(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Registry]:
    """The embedded default (SQLite + local files) and team mode (PostgreSQL + S3 server)."""
    if request.param == "embedded":
        settings = Settings(home=tmp_path / "home")
    else:
        pg_url = request.getfixturevalue("pg_url")
        bucket = request.getfixturevalue("s3_bucket")
        endpoint = request.getfixturevalue("s3_server")
        settings = Settings(
            home=tmp_path / "home",
            registry_uri=pg_url,
            artifact_uri=f"s3://{bucket}/models",
            s3_endpoint_url=endpoint,
            actor="ci-bot",
        )
    reg = Registry.open(settings=settings)
    try:
        yield reg
    finally:
        reg.close()


@pytest.fixture(scope="session")
def data() -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(3)
    x = pd.DataFrame(rng.normal(size=(300, 5)), columns=[f"f{i}" for i in range(5)])
    y = (x["f0"] + 0.5 * x["f1"] > 0).astype(int).to_numpy()
    return x, y


@pytest.fixture(scope="session")
def pipeline(data: tuple[pd.DataFrame, np.ndarray]) -> Pipeline:
    x, y = data
    return make_pipeline(StandardScaler(), LogisticRegression()).fit(x, y)
