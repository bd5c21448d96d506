"""The seams of the registry: a metadata store and a content-addressed artifact store.

Implementations are chosen by URI (``sqlite:///``, ``postgresql+psycopg://``; a directory or
``s3://bucket/prefix``). Fakes in unit tests implement these same protocols.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from modelport.core.auth import ApiKeyRecord
from modelport.core.deployment import DeploymentSpec
from modelport.core.model import (
    AliasMove,
    AuditEvent,
    DatasetVersion,
    GateReportRecord,
    ModelVersion,
    NewDatasetVersion,
    NewModelVersion,
    RegisteredModel,
    Variant,
)
from modelport.core.rollouts import (
    DeploymentRecord,
    NewRolloutEvent,
    RolloutCommandRecord,
    RolloutEventRecord,
    RolloutRecord,
    RouteRecord,
)

__all__ = ["ArtifactStore", "MetadataStore"]


class MetadataStore(Protocol):
    """Models, immutable versions, aliases with history, datasets, deployments with their
    rollouts, and the audit log.

    Every mutating method writes its audit event in the same transaction as the change.
    """

    uri: str

    def add_version(self, new: NewModelVersion) -> ModelVersion:
        """Create the model if needed and record a version with the next free number.

        Numbers are allocated inside the transaction: concurrent callers (threads or processes)
        get unique, consecutive numbers.
        """
        ...

    def get_model(self, name: str) -> RegisteredModel: ...

    def list_models(self) -> list[RegisteredModel]: ...

    def get_version(self, name: str, number: int) -> ModelVersion: ...

    def latest_version(self, name: str) -> ModelVersion: ...

    def list_versions(self, name: str) -> list[ModelVersion]: ...

    def add_variant(self, name: str, number: int, variant: Variant, actor: str) -> ModelVersion:
        """Record a derived artifact (e.g. the ONNX fast path) of version ``number``.

        One variant per kind: recording a kind again replaces it, and the ``version.variant``
        audit event (same transaction) says so. The version's own artifact stays immutable.
        Returns the version with its variants.
        """
        ...

    def add_gate_report(
        self,
        name: str,
        number: int,
        gate: str,
        passed: bool,
        report: Mapping[str, Any],
        actor: str,
    ) -> GateReportRecord:
        """Append a gate report (a JSON object) to version ``number``; audited as
        ``version.gate`` in the same transaction. Reports are append-only."""
        ...

    def list_gate_reports(
        self, name: str, number: int | None = None, gate: str | None = None
    ) -> list[GateReportRecord]:
        """Gate reports of a model, a version or one gate of a version, oldest first."""
        ...

    def resolve_alias(self, name: str, alias: str) -> int: ...

    def set_alias(
        self, name: str, alias: str, number: int, actor: str, reason: str = ""
    ) -> AliasMove:
        """Point ``alias`` at version ``number``; append the move to the history."""
        ...

    def delete_alias(self, name: str, alias: str, actor: str, reason: str = "") -> AliasMove: ...

    def alias_history(self, name: str, alias: str) -> list[AliasMove]: ...

    def add_dataset_version(self, new: NewDatasetVersion) -> DatasetVersion: ...

    def get_dataset_version(self, name: str, number: int | None = None) -> DatasetVersion:
        """A dataset version; the latest one when ``number`` is None."""
        ...

    def find_dataset_version(self, digest: str) -> DatasetVersion | None:
        """The first dataset version with this content digest, if any."""
        ...

    def list_dataset_versions(self, name: str | None = None) -> list[DatasetVersion]: ...

    # deployments and rollouts ----------------------------------------------------------------

    def record_deployment(self, spec: DeploymentSpec, actor: str) -> DeploymentRecord:
        """Append ``spec`` as its endpoint's next revision (from 1), audited as
        ``deployment.record``; if the latest revision has the same digest, return it and write
        nothing."""
        ...

    def get_deployment(self, endpoint: str, revision: int | None = None) -> DeploymentRecord:
        """A revision of the endpoint's spec (the latest when None);
        ``DeploymentNotFoundError`` when missing."""
        ...

    def list_deployments(self) -> list[DeploymentRecord]:
        """The latest revision of every endpoint's spec, by endpoint."""
        ...

    def start_rollout(
        self,
        endpoint: str,
        spec_revision: int,
        state: Mapping[str, Any],
        phase: str,
        actor: str,
    ) -> RolloutRecord:
        """Create a rollout at ``revision`` 1; ``ConflictError`` while another rollout of the
        endpoint is unfinished (at most one is)."""
        ...

    def save_rollout(
        self,
        rollout_id: int,
        state: Mapping[str, Any],
        phase: str,
        expected_revision: int,
        actor: str,
        finished: bool = False,
        *,
        events: Sequence[NewRolloutEvent] = (),
        consumed: Sequence[int] = (),
    ) -> RolloutRecord:
        """Compare-and-swap on ``revision``: ``ConflictError`` if the rollout is no longer at
        ``expected_revision`` or is finished; ``events`` and ``consumed`` command ids land in
        the same transaction."""
        ...

    def current_rollout(self, endpoint: str) -> RolloutRecord | None:
        """The endpoint's unfinished rollout, if any."""
        ...

    def latest_rollout(self, endpoint: str) -> RolloutRecord | None:
        """The endpoint's newest rollout, finished or not."""
        ...

    def list_rollouts(
        self, endpoint: str | None = None, active_only: bool = False
    ) -> list[RolloutRecord]:
        """Rollouts oldest first (of one endpoint, or only the unfinished ones)."""
        ...

    def add_rollout_events(
        self, rollout_id: int, events: Sequence[NewRolloutEvent], actor: str
    ) -> None:
        """Append events to a rollout's timeline, each also an audit event named by its kind."""
        ...

    def rollout_history(self, endpoint: str) -> list[RolloutEventRecord]:
        """Every event of every rollout of the endpoint, oldest first."""
        ...

    def add_rollout_command(
        self, endpoint: str, op: str, actor: str, reason: str = ""
    ) -> RolloutCommandRecord:
        """Queue an operator command for the endpoint's unfinished rollout;
        ``RolloutNotFoundError`` when there is none."""
        ...

    def pending_commands(self, rollout_id: int) -> list[RolloutCommandRecord]:
        """The rollout's commands not consumed yet, oldest first."""
        ...

    def consume_command(self, command_id: int, actor: str) -> None:
        """Mark a command acted on, once: ``ConflictError`` if it was consumed already."""
        ...

    # route tables -----------------------------------------------------------------------------

    def get_routes(self, endpoint: str) -> RouteRecord | None:
        """The endpoint's published route table, None before the first publish."""
        ...

    def list_routes(self) -> list[RouteRecord]:
        """Every published route table, by endpoint name."""
        ...

    def publish_routes(
        self, endpoint: str, table: Mapping[str, Any], expected_generation: int, actor: str
    ) -> RouteRecord:
        """Replace the endpoint's table (a JSON object, stored as given) by compare-and-swap:
        write generation ``expected_generation + 1`` if the endpoint is still at
        ``expected_generation`` (0: none yet), else ``ConflictError``; audited as
        ``routes.publish`` in the same transaction."""
        ...

    # API keys ---------------------------------------------------------------------------------

    def add_api_key(
        self, key_id: str, name: str, key_digest: str, scopes: Sequence[str], actor: str
    ) -> ApiKeyRecord:
        """Record a key by the digest of its token (never the token), audited as
        ``keys.create``; ``ConflictError`` if its id or name is taken."""
        ...

    def list_api_keys(self, *, include_revoked: bool = False) -> list[ApiKeyRecord]:
        """Keys by creation time; revoked ones only with ``include_revoked``."""
        ...

    def api_key_digest(self, key_id: str) -> tuple[ApiKeyRecord, str] | None:
        """The key with this id and its stored digest, else None."""
        ...

    def revoke_api_key(self, id_or_name: str, actor: str) -> ApiKeyRecord:
        """Revoke a key once (``keys.revoke``): ``ConflictError`` if it is revoked already,
        ``ApiKeyNotFoundError`` if there is no such key."""
        ...

    # audit ------------------------------------------------------------------------------------

    def record_audit(
        self,
        actor: str,
        action: str,
        object_type: str,
        object_name: str,
        version: int | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> AuditEvent: ...

    def query_audit(
        self,
        model: str | None = None,
        actor: str | None = None,
        action: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 1000,
    ) -> list[AuditEvent]:
        """Audit events, oldest first, filtered by object name (``model``), actor, action, time."""
        ...

    def close(self) -> None: ...


class ArtifactStore(Protocol):
    """Blobs addressed by their sha256 hex digest; keys are validated hex, never paths."""

    uri: str

    def put_file(self, path: Path) -> tuple[str, int]:
        """Store a file's bytes; return ``(sha256_hex, size)``. Idempotent."""
        ...

    def put_stream(self, stream: BinaryIO) -> tuple[str, int]:
        """Store bytes read from ``stream``; return ``(sha256_hex, size)``."""
        ...

    def exists(self, sha256: str) -> bool: ...

    def fetch(self, sha256: str, dest: Path) -> None:
        """Write the blob to ``dest`` (must not exist yet), verifying its sha256 while copying.

        Raises ``ArtifactNotFoundError`` when absent and ``DigestMismatchError`` when the stored
        bytes do not hash to ``sha256`` (``dest`` is then removed).
        """
        ...

    def delete(self, sha256: str) -> None:
        """Remove a blob; removing an absent one does nothing."""
        ...

    def list_blobs(self) -> Sequence[str]: ...

    def close(self) -> None:
        """Release connections (S3 pools); the store is not used afterwards."""
        ...
