"""The endpoints a server routes by table: which versions answer a name, and which to preload.

A deployment spec (``core.deployment``) names an endpoint, the model behind it and how a
candidate earns traffic; the rollout controller publishes the endpoint's ``RouteTable`` and
every server swaps its ``Router`` to it. ``EndpointPlan`` is what a server learns about one
endpoint on each poll (``serving.endpoint_watch``): the published table (None until the
controller published one; the spec's baseline then takes every request) and the versions to
load before any traffic reaches them (the baseline and the candidate of a rollout under way), so
that a weight change finds the candidate loaded, warmed and smoke-tested.

A request for ``/v2/models/{endpoint}/infer`` (or any protocol's route without an explicit
version) is routed by the endpoint's table; an explicit version (``.../versions/4/infer``)
bypasses it. ``Endpoints`` is used on the event loop only; ``apply`` replaces its whole
contents in one step.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from modelport.core.errors import InvalidInputError
from modelport.serving.router import Router, RouteTable

__all__ = ["EndpointPlan", "EndpointRoute", "Endpoints", "VersionKey"]

log = logging.getLogger("modelport.serving")
VersionKey = tuple[str, int]


@dataclass(frozen=True, slots=True)
class EndpointPlan:
    """One endpoint as the registry describes it now (see module doc). ``baseline`` is the
    version the spec's baseline ref resolves to; ``preload`` the versions to keep loaded."""

    endpoint: str
    model: str
    baseline: int | None
    table: RouteTable | None = None
    preload: tuple[int, ...] = ()

    def effective_table(self) -> RouteTable | None:
        """The published table, else every request to the baseline (generation 0, so the
        first published table replaces it)."""
        if self.table is not None:
            return self.table
        if self.baseline is None:
            return None
        return RouteTable.single(self.endpoint, str(self.baseline), generation=0)


@dataclass(frozen=True, slots=True)
class EndpointRoute:
    """An endpoint being routed: its model and the router holding its current table."""

    endpoint: str
    model: str
    router: Router

    def weighted(self) -> tuple[int, ...]:
        """The versions taking traffic, heaviest first (the fallback order)."""
        routes = sorted(self.router.table.routes, key=lambda r: -r[1])
        return tuple(int(version) for version, weight in routes if weight > 0)

    def shadow(self) -> int | None:
        shadow = self.router.table.shadow
        return int(shadow[0]) if shadow is not None and shadow[1] > 0 else None


def _versions(table: RouteTable) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in table.versions)
    except ValueError:
        raise InvalidInputError(
            f"the route table of endpoint {table.endpoint!r} names a version that is not a "
            f"number: publish version numbers (e.g. '3')"
        ) from None


class Endpoints:
    """The routed endpoints of one worker, by name."""

    def __init__(self, rng: Callable[[], float] = random.random) -> None:
        self._rng = rng
        self._routes: dict[str, EndpointRoute] = {}
        self._preload: frozenset[VersionKey] = frozenset()

    def get(self, name: str) -> EndpointRoute | None:
        return self._routes.get(name)

    def names(self) -> list[str]:
        return sorted(self._routes)

    def __len__(self) -> int:
        return len(self._routes)

    def apply(self, plans: Iterable[EndpointPlan]) -> bool:
        """Route exactly ``plans`` from now on (endpoints missing from them stop being routed);
        return whether anything changed. A table is swapped in only when its generation is
        newer than the one routed (a late poll never goes back)."""
        routes: dict[str, EndpointRoute] = {}
        preload: set[VersionKey] = set()
        changed = False
        for plan in plans:
            table = plan.effective_table()
            preload.update((plan.model, n) for n in plan.preload)
            if table is None:
                continue
            _versions(table)
            current = self._routes.get(plan.endpoint)
            if current is None or current.model != plan.model:
                current = EndpointRoute(plan.endpoint, plan.model, Router(table, rng=self._rng))
                changed = True
                log.info("endpoint %r routes %s", plan.endpoint, _describe(table))
            elif current.router.swap(table):
                changed = True
                log.info("endpoint %r now routes %s", plan.endpoint, _describe(table))
            routes[plan.endpoint] = current
        changed = changed or routes.keys() != self._routes.keys()
        changed = changed or preload != self._preload
        self._routes = routes
        self._preload = frozenset(preload)
        return changed

    def keys(self) -> set[VersionKey]:
        """Every version the endpoints route to, mirror to or preload: the ones to load."""
        out = set(self._preload)
        for route in self._routes.values():
            out.update((route.model, n) for n in _versions(route.router.table))
        return out

    def taking_traffic(self) -> dict[str, tuple[VersionKey, ...]]:
        """Per endpoint, the versions its table sends requests to (not the shadow)."""
        return {
            name: tuple((route.model, n) for n in route.weighted())
            for name, route in self._routes.items()
        }


def _describe(table: RouteTable) -> str:
    routes = ", ".join(f"v{v} {w:g}%" for v, w in table.routes if w > 0)
    shadow = f", mirroring {table.shadow[1]:.0%} to v{table.shadow[0]}" if table.shadow else ""
    return f"{routes}{shadow} (generation {table.generation})"
