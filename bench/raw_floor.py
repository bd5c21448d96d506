"""The raw floor: the least a Python server can do to answer a V2-style JSON request.

Starlette + uvicorn (one process, one worker, uvloop/httptools as uvicorn picks them), orjson to
parse, ``model.predict_proba`` called directly on the event loop, orjson to answer. No
validation, no batching, no thread hand-off: what modelport's overhead is measured against.

    python bench/raw_floor.py --port 8000 --model lr=bench/.work/models/lr.joblib [--model ...]

POST /v2/models/{name}/infer with ``{"inputs": [{"shape": [n, 20], "data": [...]}]}`` answers
``{"model_name": name, "outputs": [{"name": "probabilities", "shape": [n, 2], ...}]}``.
"""

from __future__ import annotations

import argparse
from typing import Any

import joblib
import numpy as np
import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


def build(models: dict[str, Any]) -> Starlette:
    async def infer(request: Request) -> Response:
        model = models.get(request.path_params["model"])
        if model is None:
            return Response(b'{"error":"unknown model"}', 404, media_type="application/json")
        tensor = orjson.loads(await request.body())["inputs"][0]
        X = np.asarray(tensor["data"], dtype=np.float64).reshape(tensor["shape"])
        proba = model.predict_proba(X)
        out = {
            "model_name": request.path_params["model"],
            "outputs": [
                {
                    "name": "probabilities",
                    "shape": list(proba.shape),
                    "datatype": "FP64",
                    "data": proba.ravel(),
                }
            ],
        }
        return Response(
            orjson.dumps(out, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json"
        )

    return Starlette(routes=[Route("/v2/models/{model}/infer", infer, methods=["POST"])])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model", action="append", required=True, help="NAME=PATH.joblib")
    args = parser.parse_args()
    models = {}
    for item in args.model:
        name, _, path = item.partition("=")
        models[name] = joblib.load(path)
    uvicorn.run(
        build(models), host="127.0.0.1", port=args.port, log_level="warning", access_log=False
    )


if __name__ == "__main__":
    main()
