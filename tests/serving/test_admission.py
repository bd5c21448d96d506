"""Admission control: timeouts from headers and parameters, body limits, the in-flight limiter."""

from __future__ import annotations

from typing import Any

import pytest

from modelport.core.errors import InvalidInputError, RequestTooLargeError
from modelport.serving.admission import (
    TIMEOUT_HEADERS,
    AdmissionPolicy,
    InflightLimiter,
    check_body_size,
    check_content_length,
    parse_timeout,
    retry_after_header,
    timeout_header,
)

POLICY = AdmissionPolicy()


def test_policy_defaults() -> None:
    assert POLICY.max_body_bytes == 8 * 1024 * 1024
    assert POLICY.max_inflight == 256
    assert POLICY.default_timeout_s is None
    assert POLICY.max_timeout_s == 300


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_body_bytes": 0}, "max_body_bytes"),
        ({"max_inflight": -1}, "max_inflight"),
        ({"max_inflight": True}, "max_inflight"),
        ({"max_timeout_s": 0}, "max_timeout_s"),
        ({"max_timeout_s": float("inf")}, "max_timeout_s"),
        ({"default_timeout_s": 0}, "default_timeout_s"),
        ({"default_timeout_s": 400}, "over max_timeout_s"),
    ],
)
def test_policy_rejects_bad_values(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        AdmissionPolicy(**kwargs)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("2.5", 2.5),
        (" 3 ", 3.0),
        ("0.001", 0.001),
        (".5", 0.5),
        ("7.", 7.0),
        ("100m", 0.1),
        ("2S", 2.0),
        ("1M", 60.0),
        ("1500u", 0.0015),
        ("2000000n", 0.002),
        ("1H", 300.0),  # clamped
        ("99999999S", 300.0),
    ],
)
def test_header_timeouts(header: str, seconds: float) -> None:
    assert parse_timeout(header, None, POLICY) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "header",
    ["", "abc", "-1", "0", "0m", "1e3", "nan", "inf", "2s", "1.5S", "123456789S", "1 S", "1,5"],
)
def test_invalid_header_timeouts(header: str) -> None:
    with pytest.raises(InvalidInputError, match="timeout header"):
        parse_timeout(header, None, POLICY)


def test_a_long_invalid_header_is_not_echoed() -> None:
    with pytest.raises(InvalidInputError) as caught:
        parse_timeout("x" * 200, None, POLICY)
    assert "xxxx" not in str(caught.value)


@pytest.mark.parametrize(
    ("parameter", "seconds"),
    [(2, 2.0), (0.25, 0.25), ("250m", 0.25), ("1.5", 1.5), (10_000, 300.0)],
)
def test_parameter_timeouts(parameter: object, seconds: float) -> None:
    assert parse_timeout(None, parameter, POLICY) == pytest.approx(seconds)


@pytest.mark.parametrize("parameter", [True, 0, -1, float("nan"), float("inf"), [], {}, "soon"])
def test_invalid_parameter_timeouts(parameter: object) -> None:
    with pytest.raises(InvalidInputError, match="parameter 'timeout'"):
        parse_timeout(None, parameter, POLICY)


def test_the_shorter_of_header_and_parameter_wins() -> None:
    assert parse_timeout("5", 2, POLICY) == 2.0
    assert parse_timeout("500m", 2, POLICY) == 0.5


def test_default_timeout_applies_without_header_or_parameter() -> None:
    assert parse_timeout(None, None, POLICY) is None
    policy = AdmissionPolicy(default_timeout_s=30, max_timeout_s=60)
    assert parse_timeout(None, None, policy) == 30
    assert parse_timeout("120", None, policy) == 60


def test_timeout_header_prefers_the_first_known_header() -> None:
    assert TIMEOUT_HEADERS[0] == "x-request-timeout"
    assert timeout_header({"grpc-timeout": "1S", "x-request-timeout": "2"}) == "2"
    assert timeout_header({"grpc-timeout": "1S"}) == "1S"
    assert timeout_header({"content-type": "application/json"}) is None


def test_content_length() -> None:
    policy = AdmissionPolicy(max_body_bytes=100)
    assert check_content_length(None, policy) is None
    assert check_content_length("100", policy) == 100
    with pytest.raises(RequestTooLargeError, match="limit of 100 bytes"):
        check_content_length("101", policy)
    for bad in ("", "-1", "1e3", "12abc", "9" * 30):
        with pytest.raises(InvalidInputError, match="Content-Length"):
            check_content_length(bad, policy)
    check_body_size(100, policy)
    with pytest.raises(RequestTooLargeError):
        check_body_size(101, policy)


def test_limiter_counts_and_refuses_beyond_its_limit() -> None:
    limiter = InflightLimiter(2)
    assert limiter.try_acquire()
    assert limiter.try_acquire()
    assert not limiter.try_acquire()
    assert (limiter.inflight, limiter.limit, limiter.rejected) == (2, 2, 1)
    limiter.release()
    assert limiter.inflight == 1
    assert limiter.try_acquire()
    limiter.release()
    limiter.release()
    with pytest.raises(RuntimeError, match="more often"):
        limiter.release()


def test_limiter_retry_after_grows_under_sustained_overload() -> None:
    limiter = InflightLimiter(2, retry_after_s=0.5)
    assert limiter.try_acquire()
    assert limiter.try_acquire()
    hints = []
    for _ in range(12):
        assert not limiter.try_acquire()
        hints.append(limiter.retry_after_s())
    assert hints[0] == 0.5
    assert hints == sorted(hints)
    assert hints[-1] == 0.5 * 16  # capped
    limiter.release()
    assert limiter.try_acquire()  # room again: back to the base hint
    assert limiter.retry_after_s() == 0.5


@pytest.mark.parametrize(("limit", "retry"), [(0, 1.0), (True, 1.0), (2.0, 1.0), (1, 0.0)])
def test_limiter_rejects_bad_values(limit: Any, retry: float) -> None:
    with pytest.raises(InvalidInputError):
        InflightLimiter(limit, retry_after_s=retry)


@pytest.mark.parametrize(
    ("seconds", "header"),
    [
        (0.0, "1"),
        (0.2, "1"),
        (1.0, "1"),
        (1.2, "2"),
        (5.0, "5"),
        (-3.0, "1"),
        (float("nan"), "1"),
        (float("inf"), "3600"),
        (1e9, "3600"),
    ],
)
def test_retry_after_header(seconds: float, header: str) -> None:
    assert retry_after_header(seconds) == header


def test_the_limiter_says_when_a_worker_is_provably_serving_one_request() -> None:
    limiter = InflightLimiter(4)
    assert not limiter.contended()
    assert limiter.try_acquire()
    assert not limiter.contended()  # one REST request: nobody else is on the way
    assert limiter.try_acquire()
    assert limiter.contended()
    limiter.release()
    limiter.release()
    limiter.enter_unseen()  # one gRPC call: its siblings wait where they are not counted
    assert limiter.inflight == 1
    assert limiter.contended()
    limiter.leave_unseen()
    assert (limiter.inflight, limiter.contended()) == (0, False)
    with pytest.raises(RuntimeError, match="leave_unseen"):
        limiter.leave_unseen()
