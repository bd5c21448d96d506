"""The traffic router: weighted split, sticky cohorts, shadow sampling, swaps and validation."""

from __future__ import annotations

import itertools
import json
import random
import threading
from dataclasses import replace
from typing import Any

import pytest

from modelport.core.errors import InvalidInputError
from modelport.serving.router import Decision, Router, RouteTable, StickyKey, sticky_key

N = 10_000
KEYS = [f"user-{i}" for i in range(N)]


def _router(*routes: tuple[str, float], seed: int = 7, **kwargs: Any) -> Router:
    return Router(RouteTable("fraud", routes, **kwargs), rng=random.Random(seed).random)


def _share(decisions: list[Decision], version: str) -> float:
    return sum(d.primary == version for d in decisions) / len(decisions)


def _assign(router: Router, keys: list[str] = KEYS) -> dict[str, str]:
    return {key: router.choose(key).primary for key in keys}


# -- weighted split ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "weights",
    [(5, 95), (25, 75), (50, 50), (90, 10), (1, 99), (12.5, 87.5), (20, 30, 50)],
)
def test_random_split_is_within_two_points_of_the_weights(weights: tuple[float, ...]) -> None:
    routes = [(f"v{i}", w) for i, w in enumerate(weights)]
    router = _router(*routes)
    decisions = [router.choose() for _ in range(N)]
    for version, weight in routes:
        assert abs(_share(decisions, version) - weight / 100) <= 0.02, (version, weight)
    assert all(d.shadow is None for d in decisions)


@pytest.mark.parametrize(("seed", "weights"), [(1, (5, 95)), (2, (25, 75)), (3, (50, 50))])
def test_sticky_split_is_within_two_points_of_the_weights(
    seed: int, weights: tuple[float, float]
) -> None:
    router = _router(("a", weights[0]), ("b", weights[1]), salt=f"s{seed}")
    assigned = list(_assign(router).values())
    assert abs(assigned.count("a") / N - weights[0] / 100) <= 0.02


def test_an_explicit_draw_picks_the_route_by_cumulative_weight() -> None:
    router = _router(("1", 10), ("2", 0), ("3", 90))
    assert router.choose(None, 0.0).primary == "1"
    assert router.choose(None, 0.0999).primary == "1"
    assert router.choose(None, 0.1).primary == "3"
    assert router.choose(None, 0.999999).primary == "3"


@pytest.mark.parametrize("draw", [-0.1, 1.0, 1.5, float("nan")])
def test_a_draw_outside_the_unit_interval_is_refused(draw: float) -> None:
    with pytest.raises(InvalidInputError, match=r"\[0, 1\)"):
        _router(("1", 50), ("2", 50)).choose(None, draw)


def test_a_zero_weight_route_never_takes_traffic() -> None:
    router = _router(("old", 0), ("new", 100))
    assert {router.choose().primary for _ in range(1000)} == {"new"}
    assert set(_assign(router, KEYS[:1000]).values()) == {"new"}
    router = _router(("a", 50), ("b", 0), ("c", 50))
    assert "b" not in {router.choose().primary for _ in range(1000)}
    assert "b" not in set(_assign(router, KEYS[:1000]).values())


def test_the_random_source_is_injected() -> None:
    router_a, router_b = (
        _router(("1", 50), ("2", 50), seed=3),
        _router(("1", 50), ("2", 50), seed=3),
    )
    a = [router_a.choose().primary for _ in range(200)]
    assert a == [router_b.choose().primary for _ in range(200)]
    assert Router(RouteTable("e", (("1", 50), ("2", 50))), rng=lambda: 0.75).choose().primary == "2"
    assert Router(RouteTable("e", (("1", 50), ("2", 50))), rng=lambda: 0.25).choose().primary == "1"


# -- sticky cohorts ----------------------------------------------------------------------------
def test_a_sticky_key_always_lands_on_the_same_version() -> None:
    router = _router(("1", 50), ("2", 50))
    first = _assign(router, KEYS[:2000])
    assert first == _assign(router, KEYS[:2000])
    replica = Router(RouteTable("fraud", (("1", 50), ("2", 50))))  # another process, no seed
    assert first == _assign(replica, KEYS[:2000])
    assert set(first.values()) == {"1", "2"}


def test_the_order_of_the_routes_does_not_move_keys() -> None:
    forward = _assign(_router(("base", 70), ("cand", 20), ("other", 10)))
    backward = _assign(_router(("other", 10), ("cand", 20), ("base", 70)))
    assert forward == backward


def test_cohorts_are_monotone_when_the_candidate_grows() -> None:
    steps = [1, 5, 10, 25, 50, 75, 100]
    cohorts = []
    for weight in steps:
        assigned = _assign(_router(("base", 100 - weight), ("cand", weight)))
        cohort = {key for key, version in assigned.items() if version == "cand"}
        assert abs(len(cohort) / N - weight / 100) <= 0.02
        cohorts.append(cohort)
    for smaller, larger in itertools.pairwise(cohorts):
        assert smaller <= larger  # a key on the candidate stays on it
    assert len(cohorts[-1]) == N


def test_with_three_versions_growing_one_keeps_its_keys_and_spares_the_others() -> None:
    before = _assign(_router(("base", 80), ("b", 10), ("c", 10)))
    after = _assign(_router(("base", 60), ("b", 20), ("c", 20)))  # b and c both doubled
    for key, version in before.items():
        if version in ("b", "c"):
            assert after[key] == version
    # a version that leaves (the others keeping their proportions) hands its keys to the
    # others, and nobody else's keys move
    without_b = _assign(_router(("base", 75), ("b", 0), ("c", 25)))
    for key, version in after.items():
        if version != "b":
            assert without_b[key] == version
    assert {without_b[key] for key, version in after.items() if version == "b"} == {"base", "c"}


def test_cohorts_are_independent_across_endpoints_and_salts() -> None:
    routes = (("base", 50), ("cand", 50))
    fraud = _assign(Router(RouteTable("fraud", routes)))
    churn = _assign(Router(RouteTable("churn", routes)))
    salted = _assign(Router(RouteTable("fraud", routes, salt="experiment-2")))
    for other in (churn, salted):
        same = sum(fraud[key] == other[key] for key in KEYS) / N
        assert abs(same - 0.5) <= 0.02  # independent: half agree by chance, not all of them
    on_fraud = [key for key in KEYS if fraud[key] == "cand"]
    also_on_churn = sum(churn[key] == "cand" for key in on_fraud) / len(on_fraud)
    assert abs(also_on_churn - 0.5) <= 0.03


def test_hashes_are_pinned_across_releases() -> None:
    # cohorts and shadow samples must not change on upgrade: every replica, old or new, agrees
    router = Router(RouteTable("fraud", (("1", 50), ("2", 50)), shadow=("3", 0.5)))
    cohorts = "".join(router.choose(f"user-{i}").primary for i in range(24))
    assert cohorts == "212212211211211212211212"
    mirrored = "".join(
        "1" if router.choose(request_id=f"req-{i}").shadow else "0" for i in range(24)
    )
    assert mirrored == "011110111111001001011001"


def test_without_a_key_a_sticky_table_falls_back_to_the_draw() -> None:
    router = _router(("1", 50), ("2", 50), sticky="header:X-User-ID")
    assert router.choose(None, 0.1).primary == "1"
    assert router.choose(None, 0.9).primary == "2"


# -- sticky key extraction ---------------------------------------------------------------------
def test_sticky_key_from_a_header_in_any_case() -> None:
    assert sticky_key("header:X-User-ID", {"x-user-id": " alice "}) == "alice"
    assert sticky_key("header:X-User-ID", {"X-User-ID": "bob"}) == "bob"
    assert sticky_key("header:X-User-ID", {"x-user-id": "  "}) is None
    assert sticky_key("header:X-User-ID", {}) is None


def test_sticky_key_from_a_body_field() -> None:
    assert sticky_key("field:user_id", {}, {"user_id": "u-1"}) == "u-1"
    assert sticky_key("field:user_id", {}, {"user_id": 42}) == "42"
    assert sticky_key("field:parameters.user", {}, {"parameters": {"user": "x"}}) == "x"
    for body in (None, {}, {"user_id": None}, {"user_id": True}, {"user_id": ""}, {"user_id": [1]}):
        assert sticky_key("field:user_id", {}, body) is None
    assert sticky_key("field:parameters.user", {}, {"parameters": "x"}) is None


@pytest.mark.parametrize(
    "spec", ["", "user_id", "cookie:session", "header:", "field:", "field:a..b", "field:.a"]
)
def test_a_sticky_spec_that_does_not_parse_is_refused(spec: str) -> None:
    with pytest.raises(InvalidInputError, match="header:NAME"):
        StickyKey.parse(spec)
    with pytest.raises(InvalidInputError, match="header:NAME"):
        RouteTable("fraud", (("1", 100),), sticky=spec)


def test_the_router_extracts_the_key_named_by_its_table() -> None:
    router = _router(("1", 50), ("2", 50), sticky="field:user_id", seed=1)
    assert router.key_for({}, {"user_id": 7}) == "7"
    assert str(StickyKey.parse("header:X-User-ID")) == "header:X-User-ID"
    assert _router(("1", 100)).key_for({"x-user-id": "a"}) is None


# -- shadow ------------------------------------------------------------------------------------
@pytest.mark.parametrize("fraction", [0.05, 0.25, 0.5])
def test_shadow_fraction_is_within_two_points_and_decided_per_request_id(fraction: float) -> None:
    router = _router(("1", 100), shadow=("2", fraction))
    ids = [f"{i:032x}" for i in range(N)]
    decisions = [router.choose(request_id=i) for i in ids]
    assert abs(sum(d.shadow == "2" for d in decisions) / N - fraction) <= 0.02
    assert all(d.primary == "1" and d.shadow in (None, "2") for d in decisions)
    replica = Router(RouteTable("fraud", (("1", 100),), shadow=("2", fraction)))
    assert [replica.choose(request_id=i) for i in ids] == decisions


def test_shadow_sampling_is_nested_as_the_fraction_grows() -> None:
    ids = [f"req-{i}" for i in range(2000)]
    low = {i for i in ids if _router(("1", 100), shadow=("2", 0.1)).choose(request_id=i).shadow}
    high = {i for i in ids if _router(("1", 100), shadow=("2", 0.3)).choose(request_id=i).shadow}
    assert low <= high


def test_shadow_edges_and_sampling_without_a_request_id() -> None:
    ids = [str(i) for i in range(500)]
    always = _router(("1", 90), ("2", 10), shadow=("3", 1.0))
    assert all(always.choose(request_id=i).shadow == "3" for i in ids)
    never = _router(("1", 100), shadow=("3", 0))
    assert all(never.choose(request_id=i).shadow is None for i in ids)
    by_draw = _router(("1", 100), shadow=("2", 0.25))
    share = sum(by_draw.choose().shadow == "2" for _ in range(N)) / N
    assert abs(share - 0.25) <= 0.02


def test_a_shadowed_weighted_split_still_splits() -> None:
    router = _router(("1", 75), ("2", 25), shadow=("3", 0.5), seed=11)
    decisions = [router.choose(request_id=f"r{i}") for i in range(N)]
    assert abs(_share(decisions, "2") - 0.25) <= 0.02
    assert abs(sum(d.shadow == "3" for d in decisions) / N - 0.5) <= 0.02


def test_versions_lists_everything_the_table_sends_requests_to() -> None:
    table = RouteTable("fraud", [("1", 90), ("2", 10), ("0", 0)], shadow=("3", 0.1))
    assert table.versions == ("1", "2", "3")
    assert table.routes == (("1", 90), ("2", 10), ("0", 0))  # lists become tuples
    assert RouteTable("fraud", [("1", 100)], shadow=("0", 0.0)).versions == ("1",)


# -- swaps -------------------------------------------------------------------------------------
def test_blue_green_switches_in_one_swap() -> None:
    router = Router(RouteTable.single("fraud", "blue", generation=1))
    assert {router.choose(k).primary for k in KEYS[:100]} == {"blue"}
    assert router.swap(RouteTable.single("fraud", "green", generation=2))
    assert {router.choose(k).primary for k in KEYS[:100]} == {"green"}
    assert router.table == RouteTable.single("fraud", "green", generation=2)


def test_a_stale_or_equal_generation_is_ignored() -> None:
    router = Router(RouteTable("fraud", (("1", 90), ("2", 10)), generation=5))
    assert not router.swap(RouteTable.single("fraud", "old", generation=4))
    assert not router.swap(RouteTable.single("fraud", "same", generation=5))
    assert router.table.generation == 5
    assert {router.choose(None, 0.95).primary, router.choose(None, 0.05).primary} == {"1", "2"}
    assert router.swap(RouteTable.single("fraud", "2", generation=6))
    assert router.choose(None, 0.05).primary == "2"


def test_concurrent_swaps_end_on_the_newest_generation() -> None:
    router = Router(RouteTable.single("fraud", "0", generation=0))
    tables = [RouteTable.single("fraud", str(g), generation=g) for g in range(1, 201)]
    random.Random(5).shuffle(tables)
    threads = [threading.Thread(target=lambda t=t: router.swap(t)) for t in tables]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert router.table.generation == 200
    assert router.choose().primary == "200"


def test_a_table_of_another_endpoint_is_refused() -> None:
    router = Router(RouteTable.single("fraud", "1"))
    with pytest.raises(InvalidInputError, match=r"'fraud'.*'churn'"):
        router.swap(RouteTable.single("churn", "1", generation=1))


# -- validation --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"routes": ()}, "list of"),
        ({"routes": "1"}, "list of"),
        ({"routes": (("1", 90),)}, "add up to 90, not 100"),
        ({"routes": (("1", 60), ("2", 60))}, "add up to 120, not 100"),
        ({"routes": (("1", 0), ("2", 0))}, "no route.*above 0"),
        ({"routes": (("1", -10), ("2", 110))}, "from 0 to 100"),
        ({"routes": (("1", float("nan")),)}, "from 0 to 100"),
        ({"routes": (("1", True),)}, "from 0 to 100"),
        ({"routes": (("1", "100"),)}, "from 0 to 100"),
        ({"routes": (("1", 50), ("1", 50))}, "listed twice"),
        ({"routes": (("", 100),)}, "name a version"),
        ({"routes": ((1, 100),)}, "name a version"),
        ({"routes": (("1", 100, 0),)}, r"\(version, number\) pair"),
        ({"shadow": ("1", 0.1)}, "both a primary route and the shadow"),
        ({"shadow": ("2", 10)}, "from 0 to 1"),
        ({"shadow": ("2", -0.1)}, "from 0 to 1"),
        ({"shadow": "2"}, r"\(version, number\) pair"),
        ({"generation": -1}, "generation"),
        ({"generation": 1.5}, "generation"),
        ({"generation": True}, "generation"),
        ({"salt": 3}, "salt"),
        ({"endpoint": ""}, "endpoint name"),
    ],
)
def test_invalid_tables_are_refused_with_a_clear_message(
    kwargs: dict[str, Any], match: str
) -> None:
    args: dict[str, Any] = {"endpoint": "fraud", "routes": (("1", 100),), **kwargs}
    with pytest.raises(InvalidInputError, match=match) as info:
        RouteTable(**args)
    if args["endpoint"]:
        assert "'fraud'" in str(info.value)


def test_valid_tables() -> None:
    RouteTable("fraud", (("1", 33.3), ("2", 33.3), ("3", 33.4)))  # float error within tolerance
    RouteTable("fraud", (("1", 100), ("2", 0)), shadow=("2", 0.2))  # a zero-weight shadow is fine
    assert RouteTable.single("fraud", "1").routes == (("1", 100),)


def test_public_names_are_complete_and_sorted() -> None:
    from modelport.serving import router

    assert router.__all__ == sorted(router.__all__)
    public = {n for n, v in vars(router).items() if not n.startswith("_") and callable(v)}
    assert {n for n in public if getattr(router, n).__module__ == router.__name__} == set(
        router.__all__
    )


# -- the stored form (to_dict / from_dict) -------------------------------------------------------
STORED_TABLES = [
    RouteTable("fraud", (("3", 100),)),
    RouteTable("fraud", (("3", 90), ("4", 10)), sticky="header:X-User-ID", salt="r2"),
    RouteTable("fraud", (("3", 33.3), ("4", 66.7)), shadow=("5", 0.1), shadow_timeout_ms=250.5),
    RouteTable("fraud", (("3", 100), ("4", 0)), shadow=("4", 1.0), sticky="field:user.id"),
]


def test_to_dict_is_the_documented_format() -> None:
    table = RouteTable(
        "fraud", (("3", 90), ("4", 10)), ("5", 0.1), "header:X-User-ID", 7, "s", 500.0
    )
    assert table.to_dict() == {
        "routes": [["3", 90], ["4", 10]],
        "shadow": ["5", 0.1],
        "shadow_timeout_ms": 500.0,
        "sticky": "header:X-User-ID",
        "salt": "s",
    }
    assert RouteTable("fraud", (("3", 100),)).to_dict() == {
        "routes": [["3", 100]],
        "shadow": None,
        "shadow_timeout_ms": 1000.0,
        "sticky": None,
        "salt": "",
    }


@pytest.mark.parametrize("table", STORED_TABLES)
def test_tables_round_trip_through_json(table: RouteTable) -> None:
    stored = json.loads(json.dumps(table.to_dict()))
    again = RouteTable.from_dict("fraud", stored, 12)
    assert again == replace(table, generation=12)
    assert again.to_dict() == table.to_dict()


def test_missing_optional_fields_take_their_defaults() -> None:
    table = RouteTable.from_dict("fraud", {"routes": [["3", 100]]}, 1)
    assert table == RouteTable("fraud", (("3", 100),), generation=1)
    assert table.shadow_timeout_ms == 1000.0


def test_a_stored_table_swaps_into_a_router_by_its_generation() -> None:
    router = Router(RouteTable.single("fraud", "3"))
    data = {"routes": [["4", 100]], "shadow": None, "sticky": None, "salt": ""}
    assert router.swap(RouteTable.from_dict("fraud", data, 1))
    assert router.choose().primary == "4"
    assert not router.swap(RouteTable.from_dict("fraud", {"routes": [["3", 100]]}, 1))
    assert router.choose().primary == "4"


@pytest.mark.parametrize("timeout", [0, 0.0, -1, 60_000.5, float("nan"), float("inf"), True, "5"])
def test_shadow_timeouts_outside_0_to_60s_are_refused(timeout: Any) -> None:
    with pytest.raises(InvalidInputError, match=r"shadow timeout of endpoint 'fraud'.*60000"):
        RouteTable("fraud", (("3", 100),), shadow_timeout_ms=timeout)


@pytest.mark.parametrize("timeout", [0.001, 1, 1000.0, 60_000])
def test_shadow_timeouts_up_to_60s_are_accepted(timeout: float) -> None:
    table = RouteTable("fraud", (("3", 100),), shadow_timeout_ms=timeout)
    assert table.shadow_timeout_ms == timeout


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (None, "not a route table"),
        ([["3", 100]], "not a route table"),
        ({}, "not a route table"),
        ({"routes": [["3", 100]], "weights": {}}, "fields this modelport does not know.*weights"),
        ({"routes": []}, "list of"),
        ({"routes": "3"}, "list of"),
        ({"routes": {"3": 100}}, "list of"),
        ({"routes": [["3", 90]]}, "add up to 90"),
        ({"routes": [["3", 100, 1]]}, r"\(version, number\) pair"),
        ({"routes": [[3, 100]]}, "name a version"),
        ({"routes": [["3", 100]], "shadow": ["3", 0.1]}, "both a primary route and the shadow"),
        ({"routes": [["3", 100]], "shadow": "4"}, r"\(version, number\) pair"),
        ({"routes": [["3", 100]], "shadow": ["4", 2]}, "from 0 to 1"),
        ({"routes": [["3", 100]], "sticky": 5}, "sticky key.*string or null"),
        ({"routes": [["3", 100]], "sticky": "cookie:id"}, "not understood"),
        ({"routes": [["3", 100]], "salt": None}, "salt"),
        ({"routes": [["3", 100]], "shadow_timeout_ms": None}, "shadow timeout"),
        ({"routes": [["3", 100]], "shadow_timeout_ms": 0}, "shadow timeout"),
    ],
)
def test_bad_stored_tables_are_refused_naming_the_endpoint(data: Any, match: str) -> None:
    with pytest.raises(InvalidInputError, match=match) as info:
        RouteTable.from_dict("fraud", data, 3)
    assert "endpoint 'fraud'" in info.value.message


def test_a_bad_stored_generation_is_refused() -> None:
    generations: tuple[Any, ...] = (-1, True, 1.0)
    for generation in generations:
        with pytest.raises(InvalidInputError, match="generation"):
            RouteTable.from_dict("fraud", {"routes": [["3", 100]]}, generation)
