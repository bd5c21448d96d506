"""Building blocks of the data plane's OpenAPI document (``openapi``)."""

from __future__ import annotations

from typing import Any

__all__ = [
    "MONITORING",
    "STATUS_TEXT",
    "json_body",
    "obj",
    "operation",
    "query_parameter",
    "ref",
    "text_body",
]

MONITORING = "Monitoring"
STATUS_TEXT = {
    400: "Malformed request or input that does not match the model's signature.",
    404: "Unknown model, version or label.",
    413: "Request body larger than the server's limit.",
    415: "Unsupported content type.",
    500: "The model or the server failed.",
    501: "Not implemented.",
    503: "Not ready, draining or overloaded; see Retry-After.",
    504: "The request's deadline passed.",
}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def json_body(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def text_body(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"text/plain": {"schema": {"type": "string"}}}}


def obj(required: list[str], **properties: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return schema


def query_parameter(name: str, description: str, maximum: int) -> dict[str, Any]:
    """An optional whole-number query parameter from 1 to ``maximum``."""
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": {"type": "integer", "minimum": 1, "maximum": maximum},
    }


def operation(
    tag: str,
    summary: str,
    ok: dict[str, Any],
    *,
    errors: tuple[int, ...] = (),
    error: str = "V2Error",
    body: dict[str, Any] | None = None,
    extra: dict[int, dict[str, Any]] | None = None,
    parameters: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """An operation answering ``ok`` (200), ``extra`` and the ``errors`` statuses (with the
    ``error`` schema)."""
    responses: dict[str, Any] = {"200": ok}
    for status, response in (extra or {}).items():
        responses[str(status)] = response
    for status in errors:
        responses.setdefault(str(status), json_body(ref(error), STATUS_TEXT[status]))
    op: dict[str, Any] = {"tags": [tag], "summary": summary, "responses": responses}
    if body is not None:
        op["requestBody"] = body
    if parameters:
        op["parameters"] = parameters
    return op
