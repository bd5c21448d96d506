"""Routing by endpoint tables in the real app: weights, sticky cohorts, shadows, fallbacks."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import grpc.aio
import pandas as pd
import pytest
from starlette.testclient import TestClient
from tests.serving.conftest import wait_ready
from tests.serving.rollout_models import AlsoZero, One, Zero

from modelport.api.registry import Registry
from modelport.core.errors import ModelLoadError, StoreUnavailableError
from modelport.core.model import ModelVersion
from modelport.core.refs import ModelRef
from modelport.runtime.base import Runtime
from modelport.serving.app import create_app, server_state
from modelport.serving.config import ServeConfig
from modelport.serving.endpoints import EndpointPlan, Endpoints
from modelport.serving.grpc import SERVICE_NAME, proto
from modelport.serving.router import RouteTable
from modelport.serving.shadow import ShadowTally

EXAMPLE = pd.DataFrame({"x": [0.0, 1.0]})


def body(x: float = 0.0) -> dict[str, Any]:
    return {"inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": [x]}]}


@pytest.fixture
def versions(registry: Registry) -> Registry:
    """``ep:1`` answers 0; ``ep:2`` answers 1, fails above x=100 and sleeps above 50;
    ``ep:3`` answers 0 like version 1."""
    registry.register(Zero(), name="ep", input_example=EXAMPLE, alias="champion")
    registry.register(One(), name="ep", input_example=EXAMPLE)
    registry.register(AlsoZero(), name="ep", input_example=EXAMPLE)
    return registry


class Plans:
    """What the registry would say: set ``plans`` and the server picks it up."""

    def __init__(self) -> None:
        self.plans: list[EndpointPlan] = []
        self.reads = 0

    def __call__(self) -> Sequence[EndpointPlan]:
        self.reads += 1
        return list(self.plans)

    def route(self, table: RouteTable, *, preload: tuple[int, ...] = ()) -> None:
        self.plans = [EndpointPlan(table.endpoint, "ep", 1, table, preload)]


@contextmanager
def serving(
    registry: Registry,
    plans: Plans,
    *,
    refuse: frozenset[int] = frozenset(),
    grpc_port: int | None = None,
) -> Iterator[TestClient]:
    config = ServeConfig(refs=("ep@champion",), poll_interval_s=0.1, grpc_port=grpc_port)

    def load(version: ModelVersion) -> Runtime:
        if version.number in refuse:
            raise ModelLoadError(f"{version.ref} is refused by this test")
        return registry.load(version.ref, threads=1)

    app = create_app(config, registry.get, load, read_endpoints=plans)
    with TestClient(app) as client:
        wait_ready(client)
        yield client


def wait_for(check: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def answered(client: TestClient, path: str = "/v2/models/ep/infer", **kw: Any) -> int:
    response = client.post(path, json=body(), **kw)
    assert response.status_code == 200, response.text
    assert response.json()["model_name"] == "ep"
    return int(response.json()["model_version"])


def test_a_weighted_table_splits_traffic_and_each_answer_names_its_version(
    versions: Registry,
) -> None:
    plans = Plans()
    plans.route(RouteTable("ep", (("1", 70), ("2", 30)), generation=1))
    with serving(versions, plans) as client:
        wait_for(lambda: server_state(client.app).plane.manager.ready_version("ep", 2))
        counts = Counter(answered(client) for _ in range(1500))
        # the answer's outputs come from the version named: 1 answers 0, 2 answers 1
        response = client.post("/v2/models/ep/infer", json=body()).json()
        assert response["outputs"][0]["data"] == [int(response["model_version"]) - 1]
    assert set(counts) == {1, 2}
    assert abs(counts[2] / 1500 - 0.30) < 0.05, counts


def test_an_explicit_version_bypasses_the_table(versions: Registry) -> None:
    plans = Plans()
    plans.route(RouteTable.single("ep", "2", generation=1))
    with serving(versions, plans) as client:
        wait_for(lambda: answered(client) == 2)
        assert answered(client, "/v2/models/ep/versions/1/infer") == 1
        assert {answered(client) for _ in range(20)} == {2}


def test_a_new_generation_switches_every_request_in_one_step_and_an_old_one_is_ignored(
    versions: Registry,
) -> None:
    plans = Plans()
    plans.route(RouteTable.single("ep", "1", generation=1), preload=(3,))
    with serving(versions, plans) as client:
        wait_for(lambda: server_state(client.app).plane.manager.ready_version("ep", 3))
        assert {answered(client) for _ in range(20)} == {1}
        plans.route(RouteTable.single("ep", "3", generation=2))  # blue-green: one switch
        wait_for(lambda: answered(client) == 3)
        assert {answered(client) for _ in range(50)} == {3}
        plans.route(RouteTable.single("ep", "1", generation=1))  # a late, older table
        reads = plans.reads
        wait_for(lambda: plans.reads > reads + 2)
        assert {answered(client) for _ in range(20)} == {3}


def test_sticky_cohorts_keep_a_user_on_one_version(versions: Registry) -> None:
    plans = Plans()
    table = RouteTable("ep", (("1", 50), ("2", 50)), sticky="header:X-User-ID", generation=1)
    plans.route(table)
    with serving(versions, plans) as client:
        wait_for(lambda: server_state(client.app).plane.manager.ready_version("ep", 2))
        first = {u: answered(client, headers={"X-User-ID": f"user-{u}"}) for u in range(60)}
        for _ in range(3):
            again = {u: answered(client, headers={"x-user-id": f"user-{u}"}) for u in range(60)}
            assert again == first
    assert set(first.values()) == {1, 2}  # 60 users, 50/50: both cohorts are populated


def _routed_generation(client: TestClient) -> int:
    route = server_state(client.app).plane.endpoints.get("ep")
    assert route is not None
    return route.router.table.generation


def _binary_v2(user: str) -> tuple[bytes, dict[str, str]]:
    """A Triton binary-extension request for x=0 with ``parameters.user_id``."""
    header = {
        "parameters": {"user_id": user},
        "inputs": [
            {"name": "x", "shape": [1], "datatype": "FP64", "parameters": {"binary_data_size": 8}}
        ],
    }
    head = json.dumps(header).encode()
    headers = {
        "Inference-Header-Content-Length": str(len(head)),
        "Content-Type": "application/octet-stream",
    }
    return head + struct.pack("<d", 0.0), headers


def test_a_field_key_keeps_a_user_on_one_version_over_every_protocol(
    versions: Registry,
) -> None:
    """``field:parameters.user_id`` reads the V2 request's parameters, in JSON and in the
    binary extension alike; ``field:params.user_id`` reads MLflow's ``params``."""
    plans = Plans()
    v2 = RouteTable("ep", (("1", 50), ("2", 50)), sticky="field:parameters.user_id", generation=1)
    plans.route(v2)
    users = [f"user-{u}" for u in range(60)]
    with serving(versions, plans) as client:
        wait_for(lambda: server_state(client.app).plane.manager.ready_version("ep", 2))

        def by_json(user: str) -> int:
            response = client.post(
                "/v2/models/ep/infer", json={**body(), "parameters": {"user_id": user}}
            )
            assert response.status_code == 200, response.text
            return int(response.json()["model_version"])

        def by_binary(user: str) -> int:
            content, headers = _binary_v2(user)
            response = client.post("/v2/models/ep/infer", content=content, headers=headers)
            assert response.status_code == 200, response.text
            return int(response.headers["x-model-version"])

        first = {u: by_json(u) for u in users}
        assert set(first.values()) == {1, 2}  # both cohorts are populated
        assert {u: by_json(u) for u in users} == first
        assert {u: by_binary(u) for u in users} == first  # the same key, the same cohort

        plans.route(replace(v2, sticky="field:params.user_id", generation=2))

        def by_mlflow(user: str) -> int:
            payload = {"dataframe_split": {"columns": ["x"], "data": [[0.0]]}}
            response = client.post("/invocations", json={**payload, "params": {"user_id": user}})
            assert response.status_code == 200, response.text
            return int(response.headers["x-model-version"])

        wait_for(lambda: _routed_generation(client) == 2)
        mlflow = {u: by_mlflow(u) for u in users}
        assert set(mlflow.values()) == {1, 2}
        assert {u: by_mlflow(u) for u in users} == mlflow


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_grpc_requests_are_sticky_by_metadata_and_by_parameters(versions: Registry) -> None:
    """Over gRPC a ``header:`` key is a metadata key and ``field:parameters.NAME`` a request
    parameter: the same users land on the same versions as over REST."""
    plans = Plans()
    by_header = RouteTable("ep", (("1", 50), ("2", 50)), sticky="header:X-User-ID", generation=1)
    plans.route(by_header)
    port = _free_port()
    users = [f"user-{u}" for u in range(40)]

    async def over_grpc(field: bool) -> dict[str, int]:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            infer = channel.unary_unary(
                f"/{SERVICE_NAME}/ModelInfer",
                request_serializer=lambda msg: msg.SerializeToString(),
                response_deserializer=proto.ModelInferResponse.FromString,
            )
            seen: dict[str, int] = {}
            for user in users:
                request = proto.ModelInferRequest(model_name="ep")
                request.inputs.add(name="x", datatype="FP64", shape=[1])
                request.inputs[0].contents.fp64_contents.append(0.0)
                metadata: tuple[tuple[str, str], ...] = ()
                if field:
                    request.parameters["user_id"].string_param = user
                else:
                    metadata = (("x-user-id", user),)
                answer = await infer(request, metadata=metadata, timeout=10)
                seen[user] = int(answer.model_version)
            return seen

    with serving(versions, plans, grpc_port=port) as client:
        wait_for(lambda: server_state(client.app).plane.manager.ready_version("ep", 2))
        rest = {u: answered(client, headers={"X-User-ID": u}) for u in users}
        assert set(rest.values()) == {1, 2}
        assert asyncio.run(over_grpc(field=False)) == rest
        plans.route(replace(by_header, sticky="field:parameters.user_id", generation=2))
        wait_for(lambda: _routed_generation(client) == 2)
        by_field = asyncio.run(over_grpc(field=True))
        assert set(by_field.values()) == {1, 2}
        assert asyncio.run(over_grpc(field=True)) == by_field


def test_a_version_that_failed_to_load_gives_way_to_a_ready_one(versions: Registry) -> None:
    plans = Plans()
    plans.route(RouteTable("ep", (("1", 50), ("2", 50)), generation=1))
    with serving(versions, plans, refuse=frozenset({2})) as client:
        manager = server_state(client.app).plane.manager
        wait_for(lambda: any(s.state == "failed" for s in manager.versions_of("ep")))
        assert {answered(client) for _ in range(100)} == {1}
        assert client.get("/v2/health/ready").status_code == 200


def test_a_routed_version_the_registry_could_not_resolve_for_a_moment_is_loaded_later(
    versions: Registry,
) -> None:
    """A registry outage while resolving a routed version is retried, not held against it."""
    plans = Plans()
    plans.route(RouteTable.single("ep", "2", generation=1))
    outages = [StoreUnavailableError("the registry is down for this test")]

    def resolve(ref: ModelRef) -> ModelVersion:
        if ref.version == 2 and outages:
            raise outages.pop()
        return versions.get(ref)

    def load(version: ModelVersion) -> Runtime:
        return versions.load(version.ref, threads=1)

    config = ServeConfig(refs=("ep@champion",), poll_interval_s=0.1)
    app = create_app(config, resolve, load, read_endpoints=plans)
    with TestClient(app) as client:
        wait_for(lambda: server_state(client.app).plane.manager.ready_version("ep", 2))
        assert not outages  # the first resolve failed, a later one loaded it
        assert {answered(client) for _ in range(10)} == {2}


def test_a_table_without_a_ready_version_is_not_ready_and_answers_503(
    versions: Registry,
) -> None:
    plans = Plans()
    plans.route(RouteTable.single("ep", "2", generation=1))
    config = ServeConfig(refs=("ep@champion",), poll_interval_s=0.1)

    def load(version: ModelVersion) -> Runtime:
        if version.number == 2:
            raise ModelLoadError(f"{version.ref} is refused by this test")
        return versions.load(version.ref, threads=1)

    app = create_app(config, versions.get, load, read_endpoints=plans)
    with TestClient(app) as client:
        manager = server_state(client.app).plane.manager
        wait_for(lambda: any(s.state == "failed" for s in manager.versions_of("ep")))
        assert client.get("/v2/health/ready").status_code == 503
        response = client.post("/v2/models/ep/infer", json=body())
        assert response.status_code == 503
        assert "ep" in response.json()["error"]


def test_shadow_copies_never_reach_the_client_and_are_compared(versions: Registry) -> None:
    plans = Plans()
    plans.route(RouteTable.single("ep", "1", generation=1))
    with serving(versions, plans) as client:
        plane = server_state(client.app).plane
        plans.route(RouteTable("ep", (("1", 100),), shadow=("2", 1.0), generation=2))
        wait_for(lambda: plane.manager.ready_version("ep", 2) is not None)
        wait_for(lambda: (route := plane.endpoints.get("ep")) is not None and route.shadow() == 2)
        answers = [client.post("/v2/models/ep/infer", json=body()) for _ in range(40)]
        assert {r.status_code for r in answers} == {200}
        assert {r.json()["model_version"] for r in answers} == {"1"}
        assert {r.json()["outputs"][0]["data"][0] for r in answers} == {0}
        wait_for(lambda: compared(plane.shadows.tally) >= 40)
        report = plane.shadows.tally.report("ep", 2)
        assert report is not None
        assert report.agreed == 0
        listed = client.get("/v2/endpoints").json()
        (endpoint,) = listed["endpoints"]
        assert endpoint["table"]["shadow"] == ["2", 1.0]
        (shadow,) = endpoint["shadows"]
        assert shadow["version"] == "2"
        assert shadow["compared"] >= 40
        assert shadow["agreement"] == 0.0
        assert shadow["agreement_high"] < 0.2  # a Wilson interval over >= 40 disagreements
        assert shadow["latency_delta_p95_ms"] is not None
        window = plane.shadows.tally.window("ep", 2, since=0.0)
        assert window is not None
        assert window.compared >= 40
        assert window.agreed == 0

        # a shadow that fails or is slow changes nothing for the client
        failing = [client.post("/v2/models/ep/infer", json=body(1000.0)) for _ in range(5)]
        assert {r.status_code for r in failing} == {200}
        started = time.monotonic()
        slow = client.post("/v2/models/ep/infer", json=body(60.0))
        assert slow.status_code == 200
        assert slow.json()["model_version"] == "1"
        assert time.monotonic() - started < 0.5  # the shadow sleeps 0.6 s
        wait_for(lambda: plane.shadows.failed >= 5)


def compared(tally: ShadowTally) -> int:
    report = tally.report("ep", 2)
    return 0 if report is None else report.compared


def test_the_shadow_queue_is_bounded(versions: Registry) -> None:
    plans = Plans()
    plans.route(RouteTable("ep", (("1", 100),), shadow=("2", 1.0), generation=1))
    with serving(versions, plans) as client:
        plane = server_state(client.app).plane
        wait_for(lambda: plane.manager.ready_version("ep", 2) is not None)
        # every mirror sleeps 0.6 s: the first 64 fill the queue, the rest are dropped
        answers = [client.post("/v2/models/ep/infer", json=body(60.0)) for _ in range(80)]
        assert {r.status_code for r in answers} == {200}
        assert plane.shadows.dropped >= 80 - 64 - 2
        assert plane.shadows.inflight <= 64


# -- Endpoints without a server -------------------------------------------------------------
def test_endpoints_apply_swaps_newer_tables_and_forgets_missing_endpoints() -> None:
    endpoints = Endpoints(rng=lambda: 0.5)
    first = RouteTable("a", (("1", 90), ("2", 10)), generation=3)
    assert endpoints.apply([EndpointPlan("a", "m", 1, first, (4,))])
    route = endpoints.get("a")
    assert route is not None
    assert route.weighted() == (1, 2)
    assert endpoints.keys() == {("m", 1), ("m", 2), ("m", 4)}
    assert endpoints.taking_traffic() == {"a": (("m", 1), ("m", 2))}
    older = RouteTable.single("a", "9", generation=2)
    assert not endpoints.apply([EndpointPlan("a", "m", 1, older, (4,))])
    assert endpoints.get("a") is route
    assert route.router.table is first
    assert endpoints.apply([])
    assert endpoints.get("a") is None
    assert endpoints.keys() == set()


def test_a_plan_without_a_table_routes_to_its_baseline_until_one_is_published() -> None:
    endpoints = Endpoints()
    endpoints.apply([EndpointPlan("a", "m", 5)])
    route = endpoints.get("a")
    assert route is not None
    assert route.weighted() == (5,)
    published = RouteTable.single("a", "6", generation=1)
    assert endpoints.apply([EndpointPlan("a", "m", 5, published)])
    assert route.weighted() == (6,)
    # neither a table nor a baseline: the name answers with its served ref again
    assert endpoints.apply([EndpointPlan("a", "m", None)])
    assert endpoints.get("a") is None
