"""The registry service: versions, datasets, aliases, deployments, rollouts and route tables,
and audit over the two stores.

It takes artifacts that are already on disk (a file or a directory), makes them content-addressed
and immutable, and gives back verified copies. Knowing how to save or load a framework's model is
the runtime layer's job; ``modelport.api.Registry`` composes both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from modelport.core.auth import ApiKeyRecord
from modelport.core.deployment import DeploymentSpec
from modelport.core.envlock import EnvironmentLock
from modelport.core.errors import ArtifactNotFoundError, InvalidInputError
from modelport.core.model import (
    AliasMove,
    AuditEvent,
    DatasetRef,
    DatasetVersion,
    GateReportRecord,
    Lineage,
    ModelVersion,
    NewDatasetVersion,
    NewModelVersion,
    RegisteredModel,
    Variant,
    VariantStatus,
)
from modelport.core.names import validate_alias, validate_key, validate_name
from modelport.core.profile import DatasetProfile, profile_frame
from modelport.core.refs import ModelRef
from modelport.core.rollouts import (
    DeploymentRecord,
    NewRolloutEvent,
    RolloutCommandRecord,
    RolloutEventRecord,
    RolloutRecord,
    RouteRecord,
)
from modelport.core.signature import Signature
from modelport.registry.artifacts.files import materialize, snapshot
from modelport.registry.datasets import dataset_format, read_table, table_schema
from modelport.registry.protocols import ArtifactStore, MetadataStore

__all__ = ["RegistryService", "VariantDraft", "VersionDraft"]

MAX_METRICS = 1000


@dataclass(frozen=True, slots=True)
class VersionDraft:
    """A version about to be registered, its artifact files already staged in ``source``."""

    name: str
    source: Path
    format: str
    runtime_config: Mapping[str, Any] = field(default_factory=dict)
    signature: Signature | None = None
    input_example: Mapping[str, Any] | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    params: Mapping[str, str] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    description: str = ""
    lineage: Lineage = field(default_factory=Lineage)
    environment: EnvironmentLock | None = None
    profile: DatasetProfile | None = None
    trusted_types: tuple[str, ...] = ()
    datasets: tuple[DatasetRef, ...] = ()


@dataclass(frozen=True, slots=True)
class VariantDraft:
    """The outcome of deriving a variant: its files in ``source`` when verified, else None."""

    kind: str
    status: VariantStatus
    reason: str
    source: Path | None = None
    tolerance: float | None = None
    max_abs_diff: float | None = None
    checked_rows: int = 0
    runtime_config: Mapping[str, Any] = field(default_factory=dict)


def _check_mapping(kind: str, values: Mapping[str, Any]) -> None:
    if len(values) > MAX_METRICS:
        raise InvalidInputError(f"too many {kind} ({len(values)}); at most {MAX_METRICS}")
    for key in values:
        validate_key(key, kind=f"{kind[:-1]} name")


class RegistryService:
    """Registry operations on a ``MetadataStore`` and an ``ArtifactStore``."""

    def __init__(
        self, meta: MetadataStore, artifacts: ArtifactStore, cache_dir: Path, actor: str
    ) -> None:
        self.meta = meta
        self.artifacts = artifacts
        self.cache_dir = cache_dir
        self.actor = actor

    # versions -----------------------------------------------------------------------------
    def register(self, draft: VersionDraft) -> ModelVersion:
        validate_name(draft.name)
        _check_mapping("metrics", draft.metrics)
        _check_mapping("params", draft.params)
        _check_mapping("tags", draft.tags)
        metrics = {}
        for key, value in draft.metrics.items():
            try:
                metrics[key] = float(value)
            except (TypeError, ValueError) as exc:
                raise InvalidInputError(f"metric {key!r} must be a number") from exc
        manifest = snapshot(draft.source, self.artifacts)
        return self.meta.add_version(
            NewModelVersion(
                name=draft.name,
                format=draft.format,
                manifest=manifest,
                signature=draft.signature,
                input_example=draft.input_example,
                metrics=metrics,
                params={k: str(v) for k, v in draft.params.items()},
                tags={k: str(v) for k, v in draft.tags.items()},
                description=draft.description,
                lineage=draft.lineage,
                environment=draft.environment,
                profile=draft.profile,
                trusted_types=tuple(sorted(set(draft.trusted_types))),
                runtime_config=dict(draft.runtime_config),
                datasets=draft.datasets,
                created_by=self.actor,
            )
        )

    def resolve(self, ref: ModelRef | str) -> ModelVersion:
        """The version a ref names: ``name`` → latest, ``name:N``, ``name@alias``."""
        parsed = ModelRef.parse(ref) if isinstance(ref, str) else ref
        if parsed.version is not None:
            return self.meta.get_version(parsed.name, parsed.version)
        if parsed.alias is not None:
            number = self.meta.resolve_alias(parsed.name, parsed.alias)
            return self.meta.get_version(parsed.name, number)
        return self.meta.latest_version(parsed.name)

    def materialize(self, version: ModelVersion) -> Path:
        """A local directory holding exactly the version's files, every digest verified."""
        return materialize(
            version.manifest, self.artifacts, self.cache_dir / version.digest.split(":", 1)[-1]
        )

    def add_variant(self, version: ModelVersion, draft: VariantDraft) -> ModelVersion:
        """Store a variant's files (if any) content-addressed and record it with ``version``."""
        manifest = snapshot(draft.source, self.artifacts) if draft.source is not None else None
        variant = Variant(
            kind=draft.kind,
            status=draft.status,
            manifest=manifest,
            digest=manifest.digest if manifest is not None else None,
            reason=draft.reason,
            tolerance=draft.tolerance,
            max_abs_diff=draft.max_abs_diff,
            checked_rows=draft.checked_rows,
            created_at=datetime.now(UTC),  # the store stamps its own clock
            runtime_config=dict(draft.runtime_config),
        )
        return self.meta.add_variant(version.name, version.number, variant, self.actor)

    def materialize_variant(self, version: ModelVersion, kind: str) -> Path:
        """A local directory holding exactly the verified variant's files, every digest verified
        (cached under the variant's digest, like the version's own files)."""
        variant = version.variant(kind)
        if variant is None or not variant.verified or variant.manifest is None:
            state = "none was built" if variant is None else f"it {variant.status}"
            raise ArtifactNotFoundError(
                f"{version.ref} has no verified {kind} variant ({state}); build one with "
                f"`modelport models fastpath {version.ref}`"
            )
        return materialize(
            variant.manifest,
            self.artifacts,
            self.cache_dir / variant.manifest.digest.split(":")[-1],
        )

    def add_gate_report(
        self, version: ModelVersion, gate: str, passed: bool, report: Mapping[str, Any]
    ) -> GateReportRecord:
        """Store a gate's report with the version it judged (append-only, audited)."""
        return self.meta.add_gate_report(
            version.name, version.number, gate, passed, report, self.actor
        )

    def gate_reports(
        self, name: str, number: int | None = None, gate: str | None = None
    ) -> list[GateReportRecord]:
        return self.meta.list_gate_reports(validate_name(name), number, gate)

    def get_model(self, name: str) -> RegisteredModel:
        return self.meta.get_model(validate_name(name))

    def list_models(self) -> list[RegisteredModel]:
        return self.meta.list_models()

    def list_versions(self, name: str) -> list[ModelVersion]:
        return self.meta.list_versions(validate_name(name))

    # aliases ------------------------------------------------------------------------------
    def set_alias(self, name: str, alias: str, number: int, reason: str = "") -> AliasMove:
        return self.meta.set_alias(
            validate_name(name), validate_alias(alias), number, self.actor, reason
        )

    def delete_alias(self, name: str, alias: str, reason: str = "") -> AliasMove:
        return self.meta.delete_alias(
            validate_name(name), validate_alias(alias), self.actor, reason
        )

    def alias_history(self, name: str, alias: str) -> list[AliasMove]:
        return self.meta.alias_history(validate_name(name), validate_alias(alias))

    # datasets -----------------------------------------------------------------------------
    def register_dataset(self, path: Path, name: str, description: str = "") -> DatasetVersion:
        """Store a CSV/Parquet file as a content-addressed dataset version (idempotent)."""
        validate_name(name, kind="dataset name")
        fmt = dataset_format(path)
        frame = read_table(path)
        manifest = snapshot(path, self.artifacts)
        for existing in self.meta.list_dataset_versions(name):
            if existing.digest == manifest.digest:
                return existing
        return self.meta.add_dataset_version(
            NewDatasetVersion(
                name=name,
                format=fmt,
                manifest=manifest,
                schema=table_schema(frame),
                profile=profile_frame(frame),
                rows=len(frame),
                description=description,
                created_by=self.actor,
            )
        )

    def get_dataset(self, name: str, number: int | None = None) -> DatasetVersion:
        return self.meta.get_dataset_version(validate_name(name, kind="dataset name"), number)

    def list_datasets(self, name: str | None = None) -> list[DatasetVersion]:
        if name is not None:
            validate_name(name, kind="dataset name")
        return self.meta.list_dataset_versions(name)

    def materialize_dataset(self, dataset: DatasetVersion) -> Path:
        return materialize(
            dataset.manifest, self.artifacts, self.cache_dir / dataset.digest.split(":", 1)[-1]
        )

    # deployments and rollouts -------------------------------------------------------------
    # Mutations are recorded with ``self.actor``; reads pass straight through. The semantics
    # (revisions, compare-and-swap, one unfinished rollout per endpoint) are the store's.
    def record_deployment(self, spec: DeploymentSpec) -> DeploymentRecord:
        """Record ``spec`` as its endpoint's next revision (no-op when the latest is equal)."""
        return self.meta.record_deployment(spec, self.actor)

    def get_deployment(self, endpoint: str, revision: int | None = None) -> DeploymentRecord:
        return self.meta.get_deployment(endpoint, revision)

    def list_deployments(self) -> list[DeploymentRecord]:
        return self.meta.list_deployments()

    def start_rollout(
        self, endpoint: str, spec_revision: int, state: Mapping[str, Any], phase: str
    ) -> RolloutRecord:
        return self.meta.start_rollout(endpoint, spec_revision, state, phase, self.actor)

    def save_rollout(
        self,
        rollout_id: int,
        state: Mapping[str, Any],
        phase: str,
        expected_revision: int,
        finished: bool = False,
        *,
        events: Sequence[NewRolloutEvent] = (),
        consumed: Sequence[int] = (),
    ) -> RolloutRecord:
        """Compare-and-swap on the rollout's ``revision`` (``ConflictError`` if it moved)."""
        return self.meta.save_rollout(
            rollout_id,
            state,
            phase,
            expected_revision,
            self.actor,
            finished,
            events=events,
            consumed=consumed,
        )

    def current_rollout(self, endpoint: str) -> RolloutRecord | None:
        """The endpoint's unfinished rollout, if any."""
        return self.meta.current_rollout(endpoint)

    def latest_rollout(self, endpoint: str) -> RolloutRecord | None:
        """The endpoint's newest rollout, finished or not."""
        return self.meta.latest_rollout(endpoint)

    def list_rollouts(
        self, endpoint: str | None = None, active_only: bool = False
    ) -> list[RolloutRecord]:
        return self.meta.list_rollouts(endpoint, active_only)

    def add_rollout_events(self, rollout_id: int, events: Sequence[NewRolloutEvent]) -> None:
        self.meta.add_rollout_events(rollout_id, events, self.actor)

    def rollout_history(self, endpoint: str) -> list[RolloutEventRecord]:
        return self.meta.rollout_history(endpoint)

    def add_rollout_command(self, endpoint: str, op: str, reason: str = "") -> RolloutCommandRecord:
        return self.meta.add_rollout_command(endpoint, op, self.actor, reason)

    def pending_commands(self, rollout_id: int) -> list[RolloutCommandRecord]:
        return self.meta.pending_commands(rollout_id)

    def consume_command(self, command_id: int) -> None:
        self.meta.consume_command(command_id, self.actor)

    # route tables -------------------------------------------------------------------------
    def get_routes(self, endpoint: str) -> RouteRecord | None:
        return self.meta.get_routes(endpoint)

    def list_routes(self) -> list[RouteRecord]:
        return self.meta.list_routes()

    def publish_routes(
        self, endpoint: str, table: Mapping[str, Any], expected_generation: int
    ) -> RouteRecord:
        """Compare-and-swap on the endpoint's ``generation`` (``ConflictError`` if it moved)."""
        return self.meta.publish_routes(endpoint, table, expected_generation, self.actor)

    # API keys -----------------------------------------------------------------------------
    def add_api_key(
        self, key_id: str, name: str, key_digest: str, scopes: Sequence[str]
    ) -> ApiKeyRecord:
        return self.meta.add_api_key(key_id, name, key_digest, scopes, self.actor)

    def list_api_keys(self, *, include_revoked: bool = False) -> list[ApiKeyRecord]:
        return self.meta.list_api_keys(include_revoked=include_revoked)

    def api_key_digest(self, key_id: str) -> tuple[ApiKeyRecord, str] | None:
        return self.meta.api_key_digest(key_id)

    def revoke_api_key(self, id_or_name: str) -> ApiKeyRecord:
        return self.meta.revoke_api_key(id_or_name, self.actor)

    # audit --------------------------------------------------------------------------------
    def record(
        self,
        action: str,
        object_type: str,
        object_name: str,
        version: int | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> AuditEvent:
        return self.meta.record_audit(
            self.actor, action, object_type, object_name, version, details or {}
        )

    def audit(
        self,
        model: str | None = None,
        actor: str | None = None,
        action: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 1000,
    ) -> list[AuditEvent]:
        return self.meta.query_audit(
            model=model, actor=actor, action=action, since=since, until=until, limit=limit
        )

    def close(self) -> None:
        try:
            self.meta.close()
        finally:
            self.artifacts.close()
