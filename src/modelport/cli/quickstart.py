"""``modelport quickstart``: train, register and load two versions on a bundled dataset."""

from __future__ import annotations

import time
from typing import Any

import click

from modelport.cli.context import AppContext, pass_app
from modelport.core.errors import MissingExtraError

__all__ = ["quickstart"]

MODEL = "breast-cancer"


def _train() -> tuple[Any, Any, Any, Any]:
    try:
        from sklearn.datasets import load_breast_cancer
        from sklearn.model_selection import train_test_split
    except ImportError as exc:  # the quickstart needs the sklearn extra
        raise MissingExtraError("scikit-learn", "sklearn") from exc
    frame = load_breast_cancer(as_frame=True).frame  # shipped inside scikit-learn: no download
    frame.columns = [str(c).replace(" ", "_") for c in frame.columns]
    features = frame.drop(columns=["target"])
    return tuple(train_test_split(features, frame["target"], test_size=0.25, random_state=7))


def _scores(model: Any, x: Any, y: Any) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

    labels = model.predict(x)
    return {
        "accuracy": float(accuracy_score(y, labels)),
        "f1": float(f1_score(y, labels)),
        "roc_auc": float(roc_auc_score(y, model.predict_proba(x)[:, 1])),
    }


def _step(message: str) -> float:
    click.echo(f"• {message}", nl=False)
    return time.perf_counter()


def _done(started: float, detail: str = "") -> None:
    click.echo(f" … {detail + ', ' if detail else ''}{time.perf_counter() - started:.1f}s")


@click.command()
@click.option("--name", default=MODEL, show_default=True, help="Name to register the model as.")
@pass_app
def quickstart(app: AppContext, name: str) -> None:
    """Train two models on a dataset bundled with scikit-learn and register them."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    click.echo(f"modelport quickstart: registry at {app.settings.home.resolve()}")
    t = _step("loading the breast-cancer dataset bundled with scikit-learn")
    x_train, x_test, y_train, y_test = _train()
    _done(t, f"{len(x_train)} training rows, {x_train.shape[1]} features")

    t = _step("training v1: StandardScaler + LogisticRegression")
    v1_model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(
        x_train, y_train
    )
    v1_scores = _scores(v1_model, x_test, y_test)
    _done(t, f"accuracy {v1_scores['accuracy']:.3f}")

    t = _step("training v2: HistGradientBoostingClassifier (100 iterations)")
    v2_model = HistGradientBoostingClassifier(max_iter=100, random_state=7).fit(x_train, y_train)
    v2_scores = _scores(v2_model, x_test, y_test)
    _done(t, f"accuracy {v2_scores['accuracy']:.3f}")

    registry = app.registry()
    t = _step(f"registering v1 as {name} (skops, input example, training-data profile)")
    v1 = registry.register(
        v1_model,
        name=name,
        input_example=x_test.head(5),
        training_data=x_train,
        metrics=v1_scores,
        params={"estimator": "LogisticRegression", "max_iter": 2000},
        description="Scaled logistic regression baseline",
        alias="champion",
    )
    _done(t, v1.ref)

    trusted = ["sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"]
    t = _step(f"registering v2, trusting the one extra skops type it needs: {trusted[0]}")
    v2 = registry.register(
        v2_model,
        name=name,
        input_example=x_test.head(5),
        training_data=x_train,
        metrics=v2_scores,
        params={"estimator": "HistGradientBoostingClassifier", "max_iter": 100},
        description="Gradient-boosted trees",
        trusted_types=trusted,
        alias="challenger",
    )
    _done(t, v2.ref)

    t = _step(f"loading {name}@champion back (digests verified) and predicting 5 rows")
    runtime = registry.load(f"{name}@champion")
    try:
        answer = runtime.predict(x_test.head(5))
    finally:
        runtime.unload()
    predictions = answer["predictions"] if isinstance(answer, dict) else answer
    _done(t, f"predictions {list(map(int, predictions))}, truth {list(map(int, y_test.head(5)))}")

    click.echo("")
    click.echo(
        f"Registered {v1.ref} ({v1.digest[:19]}…) as @champion and "
        f"{v2.ref} ({v2.digest[:19]}…) as @challenger."
    )
    click.echo("Next, try:")
    home = "" if str(app.settings.home) == ".modelport" else f" --home {app.settings.home}"
    for command in (
        "models list",
        f"models show {name}",
        f"models show {name}@challenger",
        f"alias set {name} champion {v2.number} --reason 'better accuracy'",
        f"alias history {name} champion",
        f"env check {name}@champion",
        f"audit --model {name}",
    ):
        click.echo(f"  modelport{home} {command}")
    click.echo("Serve it, then watch it from a second terminal:")
    click.echo(f"  $ modelport{home} serve {name}@champion")
    click.echo("  $ modelport status    # traffic, p95, errors, accuracy, drift, alerts")
