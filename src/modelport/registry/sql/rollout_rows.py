"""Deployment and rollout rows: inputs checked and turned into column values, rows mapped back
to the ``core.rollouts`` records, and the not-found errors of these tables.

The rollout state and the event figures are stored as given (plain JSON, non-finite floats as
``null``); the registry checks their shape and size, never their meaning.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import RowMapping

from modelport.core.deployment import DeploymentSpec, spec_from_dict
from modelport.core.errors import (
    DeploymentNotFoundError,
    IntegrityError,
    InvalidInputError,
    RolloutNotFoundError,
    SpecError,
)
from modelport.core.names import validate_name
from modelport.core.rollouts import (
    COMMAND_OPS,
    DeploymentRecord,
    NewRolloutEvent,
    RolloutCommandRecord,
    RolloutEventRecord,
    RolloutRecord,
)
from modelport.registry.sql.mapping import json_document, short_key, validate_actor

__all__ = [
    "MAX_DOCUMENT_CHARS",
    "MAX_REASON_CHARS",
    "check_count",
    "check_endpoint",
    "check_op",
    "check_phase",
    "command",
    "deployment",
    "event",
    "event_values",
    "no_command",
    "no_deployment",
    "no_revision",
    "no_rollout",
    "reason_text",
    "rollout",
    "spec_values",
    "state_document",
]

MAX_DOCUMENT_CHARS = 1_000_000
MAX_REASON_CHARS = 10_000
MAX_EVENTS = 1000


def no_deployment(endpoint: str) -> DeploymentNotFoundError:
    return DeploymentNotFoundError(
        f"endpoint {endpoint!r} has no deployment; record one with `modelport deploy SPEC.yaml`"
    )


def no_revision(endpoint: str, revision: int, latest: int) -> DeploymentNotFoundError:
    return DeploymentNotFoundError(
        f"endpoint {endpoint!r} has no spec revision {revision} (the latest is {latest}); "
        "run `modelport deployments list` to see the current revisions"
    )


def no_rollout(rollout_id: int) -> RolloutNotFoundError:
    return RolloutNotFoundError(
        f"there is no rollout #{rollout_id}; run `modelport rollout status ENDPOINT` to see an "
        "endpoint's rollout"
    )


def no_command(command_id: int) -> RolloutNotFoundError:
    return RolloutNotFoundError(
        f"there is no rollout command #{command_id}; queue one with `modelport rollout OP ENDPOINT`"
    )


def check_endpoint(endpoint: object) -> str:
    return validate_name(endpoint, kind="endpoint name")


def check_count(value: object, what: str) -> int:
    """A positive integer id, revision or number."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInputError(f"{what} must be a positive integer, not {value!r}")
    return value


def check_phase(phase: object, what: str = "rollout phase") -> str:
    return short_key(phase, what, 32)


def check_op(op: object) -> str:
    if op not in COMMAND_OPS:
        raise InvalidInputError(
            f"unknown rollout command {str(op)[:40]!r}; use one of {', '.join(COMMAND_OPS)}"
        )
    return str(op)


def reason_text(reason: object) -> str:
    if not isinstance(reason, str):
        raise InvalidInputError(f"a reason must be a string, not {type(reason).__name__}")
    if len(reason) > MAX_REASON_CHARS:
        raise InvalidInputError(f"a reason is at most {MAX_REASON_CHARS} characters; shorten it")
    return reason


def _sized(document: Any, what: str) -> Any:
    if len(json.dumps(document)) > MAX_DOCUMENT_CHARS:
        raise InvalidInputError(
            f"{what} is larger than {MAX_DOCUMENT_CHARS} characters of JSON; keep it short"
        )
    return document


def _aware(value: datetime, what: str) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInputError(f"{what} must be a timezone-aware datetime")
    return value


def spec_values(spec: DeploymentSpec) -> dict[str, Any]:
    """Column values of a new revision of ``spec`` (without ids, revision and timestamp)."""
    if not isinstance(spec, DeploymentSpec):
        raise InvalidInputError(
            f"record a DeploymentSpec (from parse_spec), not a {type(spec).__name__}"
        )
    return {"endpoint": spec.endpoint, "spec": spec.to_dict(), "digest": spec.digest()}


def state_document(
    state: object, phase: str, what: str, endpoint: str | None = None
) -> dict[str, Any]:
    """The rollout ``state`` as stored; its own ``phase`` (and ``endpoint`` when given), if it
    has them, must agree."""
    if not isinstance(state, Mapping):
        raise InvalidInputError(f"the state of {what} must be a JSON object (a dict)")
    document = _sized(json_document(dict(state), f"the state of {what}"), f"the state of {what}")
    if document.get("phase", phase) != phase:
        raise InvalidInputError(
            f"the state of {what} says phase {str(document['phase'])[:40]!r} but {phase!r} was "
            "given; pass the state's own phase"
        )
    if endpoint is not None and document.get("endpoint", endpoint) != endpoint:
        raise InvalidInputError(
            f"the state of {what} belongs to endpoint {str(document['endpoint'])[:100]!r}"
        )
    return dict(document)


def event_values(events: Sequence[NewRolloutEvent], actor: str, what: str) -> list[dict[str, Any]]:
    """Column values of new events (without ids, rollout and endpoint); ``at`` None means now."""
    if isinstance(events, NewRolloutEvent) or not isinstance(events, Sequence):
        raise InvalidInputError(f"events of {what} must be a list of NewRolloutEvent")
    if len(events) > MAX_EVENTS:
        raise InvalidInputError(f"at most {MAX_EVENTS} events of {what} at once")
    out = []
    for item in events:
        if not isinstance(item, NewRolloutEvent):
            raise InvalidInputError(
                f"events of {what} must be NewRolloutEvent, not {type(item).__name__}"
            )
        figures = item.figures
        if isinstance(figures, str | bytes | Mapping) or not isinstance(figures, Sequence):
            raise InvalidInputError(f"the figures of {what} must be a list of JSON objects")
        if not all(isinstance(f, Mapping) for f in figures):
            raise InvalidInputError(f"each figure of {what} must be a JSON object (a dict)")
        label = f"the figures of {item.kind} in {what}"
        out.append(
            {
                "at": None if item.at is None else _aware(item.at, f"the time of {item.kind}"),
                "kind": short_key(item.kind, "rollout event kind", 100),
                "phase_from": None if item.phase_from is None else check_phase(item.phase_from),
                "phase_to": None if item.phase_to is None else check_phase(item.phase_to),
                "actor": validate_actor(actor if item.actor is None else item.actor),
                "reason": reason_text(item.reason),
                "figures": _sized(json_document(list(figures), label), label),
            }
        )
    return out


def deployment(row: RowMapping) -> DeploymentRecord:
    endpoint, revision = row["endpoint"], row["revision"]
    source = f"the stored spec of endpoint {endpoint!r} revision {revision}"
    try:
        spec = spec_from_dict(row["spec"], source)
    except SpecError as exc:
        raise IntegrityError(
            f"{exc.message}\nthis modelport cannot read it; record the spec again with "
            "`modelport deploy SPEC.yaml`"
        ) from exc
    return DeploymentRecord(
        id=row["id"],
        endpoint=endpoint,
        revision=revision,
        spec=spec,
        digest=row["digest"],
        created_by=row["created_by"],
        created_at=row["created_at"],
    )


def rollout(row: RowMapping) -> RolloutRecord:
    return RolloutRecord(
        id=row["id"],
        endpoint=row["endpoint"],
        spec_revision=row["spec_revision"],
        phase=row["phase"],
        state=dict(row["state"]),
        revision=row["revision"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        finished_at=row["finished_at"],
    )


def event(row: RowMapping) -> RolloutEventRecord:
    return RolloutEventRecord(
        id=row["id"],
        rollout_id=row["rollout_id"],
        endpoint=row["endpoint"],
        at=row["at"],
        kind=row["kind"],
        phase_from=row["phase_from"],
        phase_to=row["phase_to"],
        actor=row["actor"],
        reason=row["reason"],
        figures=tuple(dict(f) for f in row["figures"]),
    )


def command(row: RowMapping) -> RolloutCommandRecord:
    return RolloutCommandRecord(
        id=row["id"],
        rollout_id=row["rollout_id"],
        endpoint=row["endpoint"],
        op=row["op"],
        actor=row["actor"],
        reason=row["reason"],
        created_at=row["created_at"],
        consumed_at=row["consumed_at"],
    )
