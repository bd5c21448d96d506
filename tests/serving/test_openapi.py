"""``GET /openapi.json`` documents every HTTP route of the app, and is a valid OpenAPI 3.1."""

from __future__ import annotations

import re

import pytest
from starlette.routing import Route
from tests.serving.conftest import ClientFactory

from modelport._version import __version__
from modelport.api.registry import Registry
from modelport.serving.routes.openapi import openapi_document

_CONVERTER = re.compile(r"\{(\w+):\w+\}")


def _served(client_app_routes: list[object]) -> set[tuple[str, str]]:
    """(path template, method) of every route; a non-``Route`` must be documented by hand."""
    served = set()
    for route in client_app_routes:
        assert isinstance(route, Route), f"{route!r}: teach this test (and openapi.py) about it"
        path = _CONVERTER.sub(r"{\1}", route.path)
        for method in route.methods or ():
            if method != "HEAD":  # Starlette adds HEAD to every GET route
                served.add((path, method.lower()))
    return served


def test_every_route_is_documented_and_nothing_else(models: Registry, serve: ClientFactory) -> None:
    with serve("clf@champion", ready=False) as client:
        served = _served(list(client.app.routes))  # type: ignore[attr-defined]
        answer = client.get("/openapi.json")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    document = answer.json()
    assert document == openapi_document()
    assert document["openapi"].startswith("3.1")
    assert document["info"]["version"] == __version__
    documented = {
        (path, method)
        for path, item in document["paths"].items()
        for method in item
        if method != "parameters"
    }
    assert served - documented == set(), "routes missing from the OpenAPI document"
    assert documented - served == set(), "documented paths that no route serves"
    for protocol in ("/v2/models/{model}/infer", "/invocations", "/v1/models/{name}:{verb}"):
        assert protocol in document["paths"]


def test_document_is_valid_openapi_with_schemas_for_the_main_bodies() -> None:
    validator = pytest.importorskip("openapi_spec_validator")
    document = openapi_document()
    validator.validate(document)
    paths, schemas = document["paths"], document["components"]["schemas"]

    def request_schema(path: str, method: str = "post") -> object:
        return paths[path][method]["requestBody"]["content"]["application/json"]["schema"]

    def response_schema(path: str, status: str, method: str = "post") -> object:
        return paths[path][method]["responses"][status]["content"]["application/json"]["schema"]

    ref = "#/components/schemas/"
    assert request_schema("/v2/models/{model}/infer") == {"$ref": ref + "V2InferenceRequest"}
    assert response_schema("/v2/models/{model}/infer", "200") == {
        "$ref": ref + "V2InferenceResponse"
    }
    assert response_schema("/v2/models/{model}/infer", "400") == {"$ref": ref + "V2Error"}
    assert request_schema("/invocations") == {"$ref": ref + "MlflowRequest"}
    assert "text/csv" in paths["/invocations"]["post"]["requestBody"]["content"]
    assert response_schema("/invocations", "415") == {"$ref": ref + "MlflowError"}
    assert request_schema("/v1/models/{name}:{verb}") == {"$ref": ref + "TfPredictRequest"}
    assert response_schema("/v1/models/{name}:{verb}", "404") == {"$ref": ref + "TfError"}
    assert response_schema("/v1/models/{name}", "200", "get") == {"$ref": ref + "TfModelStatus"}
    for name in ("V2InferenceRequest", "MlflowRequest", "TfPredictRequest", "TfModelMetadata"):
        assert schemas[name]["type"] == "object"
    # every path parameter of a template is declared
    for path, item in paths.items():
        names = set(re.findall(r"\{(\w+)\}", path))
        assert {p["name"] for p in item.get("parameters", [])} == names, path


def test_request_schemas_accept_real_bodies_and_reject_bad_ones() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    document = openapi_document()
    schemas = document["components"]["schemas"]

    def check(name: str, body: object) -> bool:
        schema = {"$ref": f"#/components/schemas/{name}", "components": {"schemas": schemas}}
        validator = jsonschema.Draft202012Validator(schema)
        return validator.is_valid(body)

    assert check("MlflowRequest", {"dataframe_split": {"columns": ["a"], "data": [[1]]}})
    assert check("MlflowRequest", {"inputs": {"a": [1]}, "params": {"k": 1}})
    assert not check("MlflowRequest", {"inputs": [[1]], "instances": [[1]]})
    assert not check("MlflowRequest", {"params": {}})
    assert check("TfPredictRequest", {"instances": [[1, 2]]})
    assert not check("TfPredictRequest", {"instances": [[1]], "inputs": [[1]]})
    tensor = {"name": "x", "datatype": "FP32", "shape": [1, 2], "data": [1, 2]}
    assert check("V2InferenceRequest", {"inputs": [tensor]})
    assert not check("V2InferenceRequest", {"inputs": []})
