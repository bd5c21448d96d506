"""``modelport quickstart``: train three versions on a bundled dataset, serve them, and roll out.

v1 (scaled logistic regression) is registered as ``@champion``, v2 (gradient-boosted trees,
more accurate) and v3 (deliberately bad: trained on flipped labels) beside it. Then a real
server takes synthetic traffic with delayed labels while v2 is canaried to full promotion and
v3 to an automatic rollback (``quickstart_rollout``), and the timeline of decisions is printed
with the figures behind each. ``--no-rollout`` stops after registration.
"""

from __future__ import annotations

import time
from typing import Any

import click

from modelport.cli.context import AppContext, pass_app
from modelport.cli.quickstart_rollout import (
    LABEL_DELAY_S,
    RATE_PER_THREAD,
    DemoServer,
    Traffic,
    canary_spec,
    run_canary,
)
from modelport.cli.rollout_commands import events_table
from modelport.core.errors import ConflictError, MissingExtraError

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
@click.option(
    "--rollout/--no-rollout",
    default=True,
    show_default=True,
    help="Serve the endpoint and canary v2 (promoted) and v3 (rolled back) under traffic.",
)
@click.option(
    "--step-interval",
    default=8.0,
    show_default=True,
    type=click.FloatRange(1, 300),
    help="Seconds each canary step holds.",
)
@click.option(
    "--keep-serving",
    is_flag=True,
    help="Leave the server running at the end (Ctrl-C stops it).",
)
@pass_app
def quickstart(
    app: AppContext, name: str, rollout: bool, step_interval: float, keep_serving: bool
) -> None:
    """Train three models on a dataset bundled with scikit-learn, register them, serve the
    endpoint and roll out: a better version to promotion, a bad one to an automatic rollback."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    click.echo(f"modelport quickstart: registry at {app.settings.home.resolve()}")
    if rollout and any(d.endpoint == name for d in app.registry().deployments()):
        raise ConflictError(
            f"endpoint {name!r} was rolled out by an earlier quickstart in "
            f"{app.settings.home}: run it with --name {name}-2, or in an empty directory"
        )
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

    t = _step("training and registering v3: the same logistic regression, on flipped labels")
    v3_model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(
        x_train, 1 - y_train
    )
    v3_scores = _scores(v3_model, x_test, y_test)
    v3 = registry.register(
        v3_model,
        name=name,
        input_example=x_test.head(5),
        training_data=x_train,
        metrics=v3_scores,
        params={"estimator": "LogisticRegression", "labels": "flipped"},
        description="Deliberately bad: trained on flipped labels",
    )
    _done(t, f"{v3.ref}, accuracy {v3_scores['accuracy']:.3f}")

    t = _step(f"loading {name}@champion back (digests verified) and predicting 5 rows")
    runtime = registry.load(f"{name}@champion")
    try:
        answer = runtime.predict(x_test.head(5))
    finally:
        runtime.unload()
    predictions = answer["predictions"] if isinstance(answer, dict) else answer
    _done(t, f"predictions {list(map(int, predictions))}, truth {list(map(int, y_test.head(5)))}")

    if rollout:
        demo(
            app,
            name,
            (x_test, y_test),
            (v1.number, v2.number, v3.number),
            step_interval,
            keep_serving,
        )
        return
    click.echo("")
    click.echo(
        f"Registered {v1.ref} ({v1.digest[:19]}…) as @champion and "
        f"{v2.ref} ({v2.digest[:19]}…) as @challenger."
    )
    _next_steps(app, name, [f"alias set {name} champion {v2.number} --reason 'better accuracy'"])
    click.echo("Serve it, then watch it from a second terminal:")
    click.echo(f"  $ modelport{_home(app)} serve {name}@champion")
    click.echo("  $ modelport status    # traffic, p95, errors, accuracy, drift, alerts")


def _home(app: AppContext) -> str:
    return "" if str(app.settings.home) == ".modelport" else f" --home {app.settings.home}"


def _next_steps(app: AppContext, name: str, extra: list[str]) -> None:
    click.echo("Next, try:")
    for command in (
        "models list",
        f"models show {name}",
        f"models show {name}@challenger",
        *extra,
        f"alias history {name} champion",
        f"env check {name}@champion",
        f"audit --model {name}",
    ):
        click.echo(f"  modelport{_home(app)} {command}")


def demo(
    app: AppContext,
    name: str,
    test: tuple[Any, Any],
    numbers: tuple[int, int, int],
    step_s: float,
    keep_serving: bool,
) -> None:
    """Serve ``name@champion``, canary v2 then v3 under traffic, print the timeline."""
    registry = app.registry()
    settings = app.settings
    _, v2, v3 = numbers
    t = _step(f"starting `modelport serve {name}@champion` (log: quickstart-server.log)")
    server = DemoServer(settings, f"{name}@champion", settings.home / "quickstart-server.log")
    url = server.start()
    _done(t, url)
    traffic = Traffic(url, name, *test)
    try:
        traffic.start()
        click.echo(
            f"• traffic: {2 * RATE_PER_THREAD:.0f} requests/s, labels {LABEL_DELAY_S:g}s later"
        )
        outcomes = []
        for number, what in ((v2, "the better"), (v3, "the bad")):
            text, spec = canary_spec(name, number, step_s)
            (settings.home / f"canary-v{number}.yaml").write_text(text)
            click.echo(
                f"• canary of {what} v{number}: steps 20% → 50% → 100%, {step_s:g}s each, "
                f"accuracy ≥ 0.9 from delayed labels (spec: canary-v{number}.yaml)"
            )
            record = run_canary(registry, spec, traffic, timeout_s=60 + 6 * step_s)
            outcomes.append((number, record.phase))
        traffic.stop()
        click.echo("")
        click.echo(f"Timeline of endpoint {name} (`modelport rollout history {name}`):")
        history = [e for e in registry.rollout_history(name) if e.kind != "rollout.phase_changed"]
        by_id = {r.id: r for r in registry.rollouts(name)}
        click.echo(events_table(history, by_id))
        click.echo("")
        for number, phase in outcomes:
            click.echo(f"v{number}: {phase.replace('_', ' ')}")
        champion = registry.get(f"{name}@champion")
        click.echo(
            f"{name}@champion is v{champion.number}; alias history: "
            f"`modelport alias history {name} champion`"
        )
        _next_steps(app, name, [f"rollout history {name} --json", f"rollout status {name}"])
        if keep_serving:
            click.echo(f"Serving at {url} (V2, /invocations, TF Serving). Ctrl-C stops it.")
            server.wait()
    finally:
        traffic.stop()
        server.stop()
