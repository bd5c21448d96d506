"""The peer servers: their model artifacts and start commands (each runs from its own venv).

- MLflow: ``mlflow.sklearn.save_model`` (skops, MLflow 3's default) of the same fitted objects,
  served by ``mlflow models serve --env-manager local`` (one server per model: MLflow serves
  one model per process). Its pyfunc calls ``predict``, so it answers labels.
- MLServer: ``mlserver_sklearn.SKLearnModel`` over the joblib files, both models in one server,
  default settings but for the ports; ``outputs: [{"name": "predict_proba"}]`` asks for the
  probabilities.
- BentoML: ``peer_apps/bento_service.py``, one service with an endpoint per model calling
  ``predict_proba`` (a sync API: BentoML runs it in its thread pool).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import procs
import venvs

APPS = Path(__file__).resolve().parent / "peer_apps"


def _env(venv: str) -> dict[str, str]:
    """As if the venv were activated: peers start helpers (uvicorn, workers) from PATH."""
    bindir = venvs.VENVS / venv / "bin"
    return {"PATH": f"{bindir}:{os.environ.get('PATH', '')}", "VIRTUAL_ENV": str(bindir.parent)}


def prepare_mlflow(work: Path, rows_json: Path, joblibs: dict[str, Path]) -> dict[str, Path]:
    """MLflow model directories for each model (raises CalledProcessError with the output)."""
    dest = work / "mlflow-models"
    args = [f"{n}={p}" for n, p in joblibs.items()]
    python = venvs.VENVS / "mlflow" / "bin" / "python"
    res = subprocess.run(
        [str(python), str(APPS / "mlflow_prep.py"), str(rows_json), str(dest), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **procs.QUIET_ENV, **_env("mlflow")},
        cwd=work,
    )
    if res.returncode != 0:
        raise RuntimeError(f"saving MLflow models failed: {(res.stderr or res.stdout)[-400:]}")
    return {n: dest / n for n in joblibs}


def mlflow_server(model_dir: Path, port: int, log: Path, work: Path) -> procs.Server:
    mlflow = venvs.VENVS / "mlflow" / "bin" / "mlflow"
    cmd = [str(mlflow), "models", "serve", "-m", str(model_dir), "--env-manager", "local"]
    cmd += ["-h", "127.0.0.1", "-p", str(port)]
    env = {**_env("mlflow"), "MLFLOW_TRACKING_URI": f"file://{work / 'mlruns'}"}
    return procs.Server("mlflow", cmd, log, env=env, cwd=work)


def prepare_mlserver(work: Path, joblibs: dict[str, Path]) -> Path:
    root = work / "mlserver"
    if root.exists():
        shutil.rmtree(root)
    for name, path in joblibs.items():
        (root / name).mkdir(parents=True)
        shutil.copy2(path, root / name / "model.joblib")
        settings = {
            "name": name,
            "implementation": "mlserver_sklearn.SKLearnModel",
            "parameters": {"uri": "./model.joblib", "version": "1"},
        }
        (root / name / "model-settings.json").write_text(json.dumps(settings))
    return root


def mlserver_server(root: Path, port: int, log: Path) -> procs.Server:
    settings = {
        "host": "127.0.0.1",
        "http_port": port,
        "grpc_port": procs.free_port(),
        "metrics_port": procs.free_port(),
    }
    (root / "settings.json").write_text(json.dumps(settings))
    cmd = [str(venvs.VENVS / "mlserver" / "bin" / "mlserver"), "start", str(root)]
    return procs.Server("mlserver", cmd, log, env=_env("mlserver"), cwd=root)


def bentoml_server(joblibs: dict[str, Path], port: int, log: Path, work: Path) -> procs.Server:
    cmd = [str(venvs.VENVS / "bentoml" / "bin" / "bentoml"), "serve", "bento_service:Bench"]
    cmd += ["--host", "127.0.0.1", "--port", str(port)]
    env = {
        **_env("bentoml"),
        "BENTOML_HOME": str(work / "bentoml-home"),
        "BENCH_LR": str(joblibs["lr"]),
        "BENCH_HGB": str(joblibs["hgb"]),
    }
    return procs.Server("bentoml", cmd, log, env=env, cwd=APPS)
