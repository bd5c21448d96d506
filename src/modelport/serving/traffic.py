"""The rollout controller's ``Traffic`` port over the registry's published route tables.

``next_table`` is the decision, pure: the table an action leaves behind given the current one
(``unchanged`` tells whether it routes any request differently). ``RegistryTraffic.apply``
reads the endpoint's table, decides, and publishes with compare-and-swap on its generation;
every serving replica picks the new table up at its next poll (``serving.endpoint_watch``) and
swaps it in because its generation is newer. An action whose table is already published writes
nothing, so the controller may re-apply an outbox after a crash without a new generation or
audit event each time (the port's idempotence). A publish that loses the race to another writer
reads again and decides again, a few times, then gives up with ``ConflictError``.

Versions appear in tables as their numbers in decimal (``"3"``), the names the data plane
routes by.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from typing import Any

from modelport.core.errors import ConflictError, InvalidInputError
from modelport.core.rollouts import RouteRecord
from modelport.registry.protocols import MetadataStore
from modelport.rollout.ports import TrafficAction
from modelport.rollout.state import SetWeights, StartShadow, StopShadow
from modelport.serving.router import RouteTable

__all__ = ["ATTEMPTS", "RegistryTraffic", "next_table", "unchanged"]

log = logging.getLogger("modelport.rollout")
ATTEMPTS = 5
"""Publishes tried per ``apply`` before a lost race is reported instead of retried."""


def next_table(
    current: RouteTable | None,
    endpoint: str,
    action: TrafficAction,
    versions: tuple[int, int | None],
) -> RouteTable | None:
    """The table after ``action``, at the generation after the current one; None when there
    is no table and the action needs none (stopping a shadow that does not exist). It may
    route exactly as ``current`` does (``unchanged`` says so): then nothing is published.
    ``versions`` is (baseline, candidate).

    ``SetWeights`` routes exactly the baseline and the candidate at those weights (a zero
    weight leaves a version out; the same version twice gets both weights) with the action's
    sticky key, and keeps the shadow unless its version now takes traffic; ``StartShadow``
    keeps the routes (all to the baseline when there are none yet) and mirrors ``fraction``
    to the candidate, cut off after ``timeout_ms``; ``StopShadow`` drops the shadow. The
    salt, and the shadow timeout where the action does not set one, carry over."""
    baseline, candidate = versions
    if isinstance(action, SetWeights):
        return _weights(current, endpoint, action, baseline, candidate)
    if isinstance(action, StartShadow):
        return _start_shadow(current, endpoint, action, baseline, candidate)
    if isinstance(action, StopShadow):
        return None if current is None else _table(current, endpoint, shadow=None)
    raise InvalidInputError(
        f"endpoint {endpoint!r}: {type(action).__name__} is not a traffic action; the "
        "controller sends SetWeights, StartShadow or StopShadow"
    )


def unchanged(current: RouteTable | None, table: RouteTable | None) -> bool:
    """Whether publishing ``table`` over ``current`` would change no request's route: no
    table to publish, or the same fields (the generation aside)."""
    if table is None:
        return True
    return current is not None and table.to_dict() == current.to_dict()


def _weights(
    current: RouteTable | None,
    endpoint: str,
    action: SetWeights,
    baseline: int,
    candidate: int | None,
) -> RouteTable:
    routes: dict[str, float] = {}
    for version, weight in ((baseline, action.baseline), (candidate, action.candidate)):
        if weight == 0:
            continue
        if version is None:
            raise InvalidInputError(
                f"endpoint {endpoint!r}: the rollout gives {weight}% to a candidate but has "
                "none; its state is inconsistent, so abort it and deploy again"
            )
        routes[str(version)] = routes.get(str(version), 0) + weight
    if not routes:
        raise InvalidInputError(
            f"endpoint {endpoint!r}: weights {action.baseline}/{action.candidate} leave no "
            "version taking traffic; a route table needs one route above 0"
        )
    shadow = None if current is None else current.shadow
    if shadow is not None and shadow[0] in routes:
        shadow = None  # the shadow version now answers clients itself
    return _table(
        current, endpoint, routes=tuple(routes.items()), shadow=shadow, sticky=action.sticky_key
    )


def _start_shadow(
    current: RouteTable | None,
    endpoint: str,
    action: StartShadow,
    baseline: int,
    candidate: int | None,
) -> RouteTable:
    if candidate is None:
        raise InvalidInputError(
            f"endpoint {endpoint!r}: the rollout mirrors traffic to a candidate but has none; "
            "its state is inconsistent, so abort it and deploy again"
        )
    shadow = (str(candidate), action.fraction)
    if current is None:  # nothing published yet: the baseline takes every request
        return _table(
            None,
            endpoint,
            routes=((str(baseline), 100),),
            shadow=shadow,
            shadow_timeout_ms=action.timeout_ms,
        )
    return _table(current, endpoint, shadow=shadow, shadow_timeout_ms=action.timeout_ms)


def _table(current: RouteTable | None, endpoint: str, **changes: Any) -> RouteTable:
    """``current`` with ``changes`` (a new table from them when there is none), at the next
    generation; ``RouteTable`` validates the result."""
    if current is None:
        return RouteTable(endpoint, generation=1, **changes)
    return replace(current, generation=current.generation + 1, **changes)


class RegistryTraffic:
    """``rollout.ports.Traffic`` over ``store``'s published route tables, written as
    ``actor``. Thread-safe: one ``apply`` at a time per instance, and compare-and-swap against
    every other writer (see module doc)."""

    def __init__(self, store: MetadataStore, *, actor: str = "controller") -> None:
        self._store = store
        self._actor = actor
        self._lock = threading.Lock()

    def current(self, endpoint: str) -> RouteTable | None:
        """The endpoint's published table, None before the first publish."""
        return _parsed(endpoint, self._store.get_routes(endpoint))

    def apply(self, endpoint: str, action: TrafficAction, versions: tuple[int, int | None]) -> None:
        with self._lock:
            for attempt in range(1, ATTEMPTS + 1):
                current = self.current(endpoint)
                table = next_table(current, endpoint, action, versions)
                if table is None or unchanged(current, table):
                    return
                expected = 0 if current is None else current.generation
                try:
                    self._store.publish_routes(endpoint, table.to_dict(), expected, self._actor)
                except ConflictError as exc:
                    if attempt == ATTEMPTS:
                        raise ConflictError(
                            f"the routes of endpoint {endpoint!r} changed under each of "
                            f"{ATTEMPTS} attempts to publish them ({exc.message}); another "
                            "writer keeps publishing, so check that one controller runs"
                        ) from exc
                    log.info("endpoint %r: routes changed meanwhile; reading again", endpoint)
                    continue
                log.info(
                    "endpoint %r: routes at generation %d: %s",
                    endpoint,
                    table.generation,
                    table.to_dict(),
                )
                return


def _parsed(endpoint: str, record: RouteRecord | None) -> RouteTable | None:
    if record is None:
        return None
    return RouteTable.from_dict(endpoint, record.table, record.generation)
