"""Fixtures of the MLflow / TF Serving route tests: a model with mixed column types."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from modelport.api.registry import Registry


@pytest.fixture(scope="session")
def customers() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 80
    return pd.DataFrame(
        {
            "age": rng.integers(18, 80, n),
            "income": rng.normal(50, 10, n),
            "city": rng.choice(["paris", "lyon", "nice"], n),
        }
    )


@pytest.fixture(scope="session")
def churn(customers: pd.DataFrame) -> Pipeline:
    """String labels from int, float and string columns."""
    labels = np.where((customers["age"] > 45) ^ (customers["city"] == "lyon"), "churn", "stay")
    prep = ColumnTransformer(
        [
            ("num", StandardScaler(), ["age", "income"]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["city"]),
        ]
    )
    return Pipeline([("prep", prep), ("clf", LogisticRegression())]).fit(customers, labels)


@pytest.fixture
def churn_model(registry: Registry, churn: Pipeline, customers: pd.DataFrame) -> Registry:
    """``churn:1``: a ``columns`` signature (age int64, income float64, city string)."""
    registry.register(churn, name="churn", input_example=customers.head(5), training_data=customers)
    return registry
