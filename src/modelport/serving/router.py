"""The traffic router: which version answers a request, and whether a shadow copy is mirrored.

A ``RouteTable`` is the validated, immutable description of one endpoint's traffic (weights that
add up to 100, an optional shadow, an optional sticky A/B key and a ``generation``); a ``Router``
answers ``choose`` per request on the event loop, without locks or I/O. Strategies are tables:

- canary / weighted split: routes ``[("1", 90), ("2", 10)]``; with no sticky key each request
  takes a random draw in [0, 1) (the router's injectable ``rng``, ``random.random`` by default);
- A/B with sticky cohorts: the same routes and ``sticky="header:X-User-ID"`` (or
  ``"field:parameters.user_id"``, a dotted path into the request body); the key is hashed
  instead of drawn. Every protocol binds what a key is read from (``serving.requestid``): REST
  headers or gRPC metadata for ``header:``; for ``field:`` the JSON body of V2, MLflow and TF
  Serving requests, and ``{"id", "parameters"}`` of binary-extension and gRPC V2 requests;
- shadow: ``shadow=("2", 0.1)`` mirrors 10% of requests to version 2, chosen by a hash of the
  request id, so a request is mirrored by every replica or by none;
- blue-green: one route at 100 (``RouteTable.single``); the switch is ``swap`` to the next table.

Sticky keys use weighted rendezvous hashing: each live version scores
``log(u(key, version)) / weight`` with ``u`` a keyed blake2b hash in (0, 1), and the highest score
wins. A version is therefore chosen with probability ``weight / 100``; the choice does not depend
on the order of the routes; and a key stays on its version while that version's weight does not
fall relative to any other's (a key on the candidate at 10% is still on it at 50%; with two
versions, raising one's weight only moves keys from the other to it; when a version leaves and
the others keep their proportions, only its keys move). Hashes are keyed by the endpoint and the
table's ``salt``: cohorts are the same in every replica and after a restart, and independent between
endpoints (change the salt to reshuffle an endpoint's cohorts on purpose).
"""

from __future__ import annotations

import hashlib
import math
import random
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeGuard

from modelport.core.errors import InvalidInputError

__all__ = ["Decision", "RouteTable", "Router", "StickyKey", "sticky_key"]

_SUM_TOLERANCE = 1e-6  # weights such as 33.3 + 33.3 + 33.4 add up to 100 within float error
_FIELDS = frozenset({"routes", "shadow", "shadow_timeout_ms", "sticky", "salt"})
_UNIT = 2.0**-53


@dataclass(frozen=True, slots=True)
class Decision:
    """Who answers a request (``primary``) and which version also gets a copy (``shadow``)."""

    primary: str
    shadow: str | None = None


@dataclass(frozen=True, slots=True)
class StickyKey:
    """Where a request carries its A/B key: ``header:X-User-ID`` or ``field:parameters.user``."""

    source: Literal["header", "field"]
    name: str

    @classmethod
    def parse(cls, spec: str) -> StickyKey:
        source, _, name = spec.partition(":") if isinstance(spec, str) else ("", "", "")
        name = name.strip()
        bad_path = source == "field" and not all(name.split("."))
        if source not in ("header", "field") or not name or bad_path:
            raise InvalidInputError(
                f"sticky key {spec!r} is not understood: write header:NAME (header:X-User-ID) "
                f"or field:PATH (field:user_id, field:parameters.user_id)"
            )
        return cls("header" if source == "header" else "field", name)

    def extract(
        self, headers: Mapping[str, str], body: Mapping[str, Any] | None = None
    ) -> str | None:
        """The key of one request, or None when it carries none (it is then routed at random).

        Header names match in any case; a body field must hold a non-empty string or an
        integer (other values are no key)."""
        if self.source == "header":
            value: Any = headers.get(self.name.lower())
            if value is None:
                value = headers.get(self.name)
            return (value.strip() or None) if isinstance(value, str) else None
        value = body
        for part in self.name.split("."):
            if not isinstance(value, Mapping):
                return None
            value = value.get(part)
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return (value or None) if isinstance(value, str) else None

    def __str__(self) -> str:
        return f"{self.source}:{self.name}"


def sticky_key(
    spec: str, headers: Mapping[str, str], body: Mapping[str, Any] | None = None
) -> str | None:
    """The sticky key named by ``spec`` (``header:X-User-ID``, ``field:user_id``), or None."""
    return StickyKey.parse(spec).extract(headers, body)


@dataclass(frozen=True, slots=True)
class RouteTable:
    """The traffic of one endpoint. ``routes`` are ``(version, weight)`` pairs whose weights
    (percent, integers or floats) add up to 100; ``shadow`` is ``(version, fraction)`` with a
    fraction from 0 to 1, cut off after ``shadow_timeout_ms``. ``generation`` grows with every
    change; a router ignores older ones. ``to_dict``/``from_dict`` are the form the registry
    stores (``{"routes": [["3", 90], ["4", 10]], "shadow": ["4", 0.1] | None,
    "shadow_timeout_ms": 1000.0, "sticky": "header:X-User-ID" | None, "salt": ""}``)."""

    endpoint: str
    routes: tuple[tuple[str, float], ...]
    shadow: tuple[str, float] | None = None
    sticky: str | None = None
    generation: int = 0
    salt: str = ""
    shadow_timeout_ms: float = 1000.0

    def __post_init__(self) -> None:
        where = f"endpoint {self.endpoint!r}"
        if not isinstance(self.endpoint, str) or not self.endpoint:
            raise InvalidInputError(f"a route table needs an endpoint name, got {self.endpoint!r}")
        object.__setattr__(self, "routes", _check_routes(self.routes, where))
        if self.shadow is not None:
            object.__setattr__(self, "shadow", _check_shadow(self.shadow, self.routes, where))
        if self.sticky is not None:
            StickyKey.parse(self.sticky)
        generation = self.generation
        if isinstance(generation, bool) or not isinstance(generation, int) or generation < 0:
            raise InvalidInputError(
                f"the generation of the route table of {where} must be an integer >= 0 that "
                f"grows with every change, got {generation!r}"
            )
        if not isinstance(self.salt, str):
            raise InvalidInputError(f"the salt of {where} must be a string, got {self.salt!r}")
        timeout = self.shadow_timeout_ms
        if not _in_range(timeout, 60_000) or timeout == 0:
            raise InvalidInputError(
                f"the shadow timeout of {where} must be above 0 and at most 60000 ms, "
                f"got {timeout!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        """The stored form (see class doc); the generation is stored beside it."""
        return {
            "routes": [[version, weight] for version, weight in self.routes],
            "shadow": None if self.shadow is None else [self.shadow[0], self.shadow[1]],
            "shadow_timeout_ms": self.shadow_timeout_ms,
            "sticky": self.sticky,
            "salt": self.salt,
        }

    @classmethod
    def from_dict(cls, endpoint: str, data: Mapping[str, Any], generation: int) -> RouteTable:
        """The table of ``endpoint`` from its stored form (``to_dict``) and the generation
        stored beside it. ``InvalidInputError`` names the endpoint and what is wrong; unknown
        fields are refused rather than ignored, since a table is only safe to route by when
        every field of it is understood."""
        where = f"the stored route table of endpoint {endpoint!r}"
        if not isinstance(data, Mapping) or "routes" not in data:
            raise InvalidInputError(
                f"{where} is not a route table (it needs at least 'routes'); publish the "
                "endpoint's routes again"
            )
        unknown = sorted(str(key)[:40] for key in data if key not in _FIELDS)
        if unknown:
            raise InvalidInputError(
                f"{where} has fields this modelport does not know ({', '.join(unknown[:5])}); "
                "upgrade modelport on this server, or publish the routes again"
            )
        sticky = data.get("sticky")
        if sticky is not None:
            if not isinstance(sticky, str):
                raise InvalidInputError(f"the sticky key of {where} must be a string or null")
            try:
                StickyKey.parse(sticky)
            except InvalidInputError as exc:
                raise InvalidInputError(f"{where}: {exc.message}") from exc
        routes, shadow = data["routes"], data.get("shadow")
        if isinstance(routes, list):
            routes = tuple(tuple(r) if isinstance(r, list) else r for r in routes)
        return cls(
            endpoint,
            routes,
            tuple(shadow) if isinstance(shadow, list) else shadow,
            sticky,
            generation,
            data.get("salt", ""),
            data.get("shadow_timeout_ms", 1000.0),
        )

    @classmethod
    def single(cls, endpoint: str, version: str, *, generation: int = 0) -> RouteTable:
        """Every request to ``version`` (blue-green: swap in the next single table)."""
        return cls(endpoint, ((version, 100),), generation=generation)

    @property
    def versions(self) -> tuple[str, ...]:
        """Every version this table sends requests to (weight > 0, then a sampled shadow)."""
        live = tuple(version for version, weight in self.routes if weight > 0)
        if self.shadow is not None and self.shadow[1] > 0:
            return (*live, self.shadow[0])
        return live


def _pair(value: object, what: str) -> tuple[str, object]:
    """``(version, number)`` from a 2-item sequence, checking the version."""
    if isinstance(value, str | bytes) or not isinstance(value, Sequence) or len(value) != 2:
        raise InvalidInputError(f"{what} must be a (version, number) pair, got {value!r}")
    version, number = value
    if not isinstance(version, str) or not version:
        raise InvalidInputError(f"{what} must name a version (a non-empty string), got {version!r}")
    return version, number


def _in_range(number: object, high: float) -> TypeGuard[int | float]:
    return (
        isinstance(number, int | float)
        and not isinstance(number, bool)
        and math.isfinite(number)
        and 0 <= number <= high
    )


def _check_routes(routes: object, where: str) -> tuple[tuple[str, float], ...]:
    if isinstance(routes, str | bytes) or not isinstance(routes, Sequence) or not routes:
        raise InvalidInputError(
            f"the routes of {where} must be a list of (version, weight) pairs, got {routes!r}"
        )
    checked: dict[str, float] = {}
    for route in routes:
        version, weight = _pair(route, f"a route of {where}")
        if not _in_range(weight, 100):
            raise InvalidInputError(
                f"the weight of version {version!r} on {where} must be a number from 0 to 100, "
                f"got {weight!r}"
            )
        if version in checked:
            raise InvalidInputError(
                f"version {version!r} is listed twice in the routes of {where}: give it one weight"
            )
        checked[version] = weight
    total = math.fsum(checked.values())
    if total == 0:
        raise InvalidInputError(f"no route of {where} has a weight above 0: give one version 100")
    if abs(total - 100) > _SUM_TOLERANCE:
        raise InvalidInputError(
            f"the weights of {where} add up to {total:g}, not 100: give each version its share "
            f"of 100 (for example 90 and 10)"
        )
    return tuple(checked.items())


def _check_shadow(
    shadow: object, routes: tuple[tuple[str, float], ...], where: str
) -> tuple[str, float]:
    version, fraction = _pair(shadow, f"the shadow of {where}")
    if not _in_range(fraction, 1.0):
        raise InvalidInputError(
            f"the shadow fraction of version {version!r} on {where} must be a number from 0 to 1 "
            f"(0.1 mirrors 10% of requests), got {fraction!r}"
        )
    if any(version == primary and weight > 0 for primary, weight in routes):
        raise InvalidInputError(
            f"version {version!r} of {where} cannot be both a primary route and the shadow: "
            f"set its weight to 0 or mirror another version"
        )
    return version, fraction


def _frame(text: str) -> bytes:
    data = text.encode("utf-8", "surrogatepass")
    return len(data).to_bytes(4, "big") + data


class _Plan:
    """A table compiled for ``choose``: thresholds, prepared hashers and ready-made decisions."""

    __slots__ = (
        "cuts",
        "direct",
        "fraction",
        "key",
        "mirrored",
        "scorers",
        "shadow",
        "shadow_cut",
        "table",
    )

    def __init__(self, table: RouteTable) -> None:
        self.table = table
        self.key = None if table.sticky is None else StickyKey.parse(table.sticky)
        live = [(version, float(weight)) for version, weight in table.routes if weight > 0]
        total = math.fsum(weight for _, weight in live)
        running = 0.0
        cuts = []
        for _, weight in live:
            running += weight
            cuts.append(running / total)
        cuts[-1] = 1.0
        self.cuts = tuple(cuts)
        secret = hashlib.blake2b(
            _frame(table.endpoint) + _frame(table.salt), digest_size=32, person=b"modelport.route"
        ).digest()
        scorers: list[tuple[hashlib.blake2b, float]] = []
        for version, weight in live:
            hasher = hashlib.blake2b(key=secret, digest_size=8, person=b"modelport.sticky")
            hasher.update(_frame(version))
            scorers.append((hasher, 1.0 / weight))
        self.scorers = tuple(scorers)
        mirror = table.shadow[0] if table.shadow else None
        self.fraction = float(table.shadow[1]) if table.shadow else 0.0
        self.shadow_cut = self.fraction * 2.0**64  # a 64-bit hash below it is mirrored
        self.shadow = hashlib.blake2b(key=secret, digest_size=8, person=b"modelport.shadow")
        self.direct = tuple(Decision(version) for version, _ in live)
        self.mirrored = tuple(Decision(version, mirror) for version, _ in live)


class Router:
    """Routes the requests of one endpoint by its current ``RouteTable``.

    ``choose`` reads the table once, so a concurrent ``swap`` never mixes two tables in one
    decision; ``swap`` is one attribute assignment. ``rng`` returns floats in [0, 1).
    """

    __slots__ = ("_lock", "_plan", "_rng")

    def __init__(self, table: RouteTable, *, rng: Callable[[], float] = random.random) -> None:
        self._plan = _Plan(table)
        self._rng = rng
        self._lock = threading.Lock()

    @property
    def table(self) -> RouteTable:
        return self._plan.table

    def swap(self, table: RouteTable) -> bool:
        """Route by ``table`` from now on, if its generation is newer; return whether it was.

        An older or equal generation (a late update from a slower channel) is ignored."""
        current = self._plan.table
        if table.endpoint != current.endpoint:
            raise InvalidInputError(
                f"the router of endpoint {current.endpoint!r} cannot take the route table of "
                f"endpoint {table.endpoint!r}: give each endpoint its own router"
            )
        plan = _Plan(table)  # compiled outside the lock: only the check and the store are inside
        with self._lock:
            if table.generation <= self._plan.table.generation:
                return False
            self._plan = plan
        return True

    def key_for(
        self, headers: Mapping[str, str], body: Mapping[str, Any] | None = None
    ) -> str | None:
        """The sticky key of a request under the current table (None without a sticky spec)."""
        key = self._plan.key
        return None if key is None else key.extract(headers, body)

    def choose(
        self,
        request_key: str | None = None,
        draw: float | None = None,
        *,
        request_id: str | None = None,
    ) -> Decision:
        """The decision for one request.

        ``request_key``: its sticky key (hashed: the same key gets the same version while the
        weights stay); else ``draw`` in [0, 1) or a fresh draw from ``rng``. ``request_id``
        decides shadow mirroring by hash (without one, ``rng`` does)."""
        plan = self._plan
        decisions = plan.direct
        if plan.fraction > 0.0:
            if request_id is None:
                mirrored = self._rng() < plan.fraction
            else:
                hasher = plan.shadow.copy()
                hasher.update(request_id.encode("utf-8", "surrogatepass"))
                mirrored = _from_bytes(hasher.digest()) < plan.shadow_cut
            if mirrored:
                decisions = plan.mirrored
        if len(decisions) == 1:
            return decisions[0]
        if request_key is not None:
            return decisions[_rendezvous(plan.scorers, request_key)]
        if draw is None:
            draw = self._rng()
        if not 0.0 <= draw < 1.0:
            raise InvalidInputError(f"a routing draw must be in [0, 1), got {draw!r}")
        for index, cut in enumerate(plan.cuts):
            if draw < cut:
                return decisions[index]
        return decisions[-1]  # unreachable: the last cut is 1.0


def _rendezvous(scorers: tuple[tuple[hashlib.blake2b, float], ...], key: str) -> int:
    """The index of the version with the highest ``log(u) / weight`` for ``key``."""
    data = key.encode("utf-8", "surrogatepass")
    best = -math.inf
    chosen = 0
    for index, (prepared, inverse_weight) in enumerate(scorers):
        hasher = prepared.copy()
        hasher.update(data)
        # the top 53 bits of the hash, made odd, over 2**53: a uniform in (0, 1), never 0
        score = _log(((_from_bytes(hasher.digest()) >> 11) | 1) * _UNIT) * inverse_weight
        if score > best:
            best = score
            chosen = index
    return chosen


_log = math.log
_from_bytes = int.from_bytes  # big-endian by default
