"""The Python API: ``Registry.open(...)``, ``register``, ``get``, ``load``, aliases, datasets.

This is where the layers meet: the runtime layer saves and loads framework models, the packaging
layer captures the environment, the registry service stores everything immutably.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from modelport.api.deployments import DeployPlan, deploy, read_spec
from modelport.api.fastpath import build_and_record, build_at_registration, load_variant
from modelport.core.deployment import DeploymentSpec
from modelport.core.envlock import EnvironmentLock, Mismatch, blocking
from modelport.core.errors import (
    EnvironmentMismatchError,
    EnvironmentMismatchWarning,
    InvalidInputError,
    UnsupportedFormatError,
    UntrustedTypesError,
)
from modelport.core.examples import MAX_EXAMPLE_ROWS, decode, encode, head
from modelport.core.model import (
    AliasMove,
    AuditEvent,
    DatasetRef,
    DatasetVersion,
    Lineage,
    ModelVersion,
    RegisteredModel,
)
from modelport.core.names import validate_name
from modelport.core.profile import DatasetProfile
from modelport.core.refs import ModelRef
from modelport.core.rollouts import (
    DeploymentRecord,
    RolloutCommandRecord,
    RolloutEventRecord,
    RolloutRecord,
)
from modelport.core.settings import Settings
from modelport.core.signature import Signature
from modelport.packaging.envlock import capture_lock, check_lock, imported_distributions
from modelport.packaging.lineage import code_revision
from modelport.registry.datasets import read_table, write_frame
from modelport.registry.open import open_service
from modelport.registry.service import RegistryService, VersionDraft
from modelport.runtime.base import LoadContext, Runtime
from modelport.runtime.loaders import (
    detect_path_format,
    framework_packages,
    open_runtime,
    save_model,
)

__all__ = ["Registry", "TypeApprover"]

EXAMPLE_ROWS = 20
_DATASET_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*:[0-9]+")
TypeApprover = Callable[[Sequence[str]], bool]
"""Asked to accept skops types outside the defaults; True accepts all of them."""


def _is_frame(value: Any) -> bool:
    return hasattr(value, "columns") and hasattr(value, "iloc")


class Registry:
    """A model registry: embedded (SQLite + files under a home dir) or team (PostgreSQL + S3)."""

    def __init__(self, service: RegistryService, settings: Settings) -> None:
        self.service = service
        self.settings = settings

    @classmethod
    def open(
        cls, home_or_uri: str | Path | None = None, *, settings: Settings | None = None
    ) -> Registry:
        """Open a registry: a home directory, a database URI, or the ``MODELPORT_*`` settings."""
        if settings is None:
            text = str(home_or_uri) if home_or_uri is not None else None
            if text is not None and "://" in text:
                settings = Settings.from_env(registry_uri=text)
            else:
                settings = Settings.from_env(home=text)
        return cls(open_service(settings), settings)

    def close(self) -> None:
        self.service.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # registration --------------------------------------------------------------------------
    def register(
        self,
        model_or_path: Any,
        *,
        name: str,
        format: str | None = None,
        input_example: Any = None,
        training_data: Any = None,
        validation_data: Any = None,
        metrics: Mapping[str, float] | None = None,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
        description: str = "",
        alias: str | None = None,
        trust_pickle: bool = False,
        trusted_types: Iterable[str] | TypeApprover | None = None,
        code_paths: Sequence[Path] | None = None,
        signature: Signature | None = None,
        source: str | None = None,
        fast_path: bool = True,
    ) -> ModelVersion:
        """Register a model object or a model file/directory as a new immutable version.

        ``trusted_types`` is a list of extra skops types the caller accepts, or a callable that is
        asked (e.g. an interactive confirmation) when the artifact needs types outside the default
        trusted set. Pickle/joblib artifacts need ``trust_pickle=True``.

        With ``fast_path`` a scikit-learn version also gets its ONNX variant, recorded verified or
        failed with the reason (see ``modelport.api.fastpath``); registration never fails
        because of it. The alias moves only after, so servers following it see the variant.
        """
        validate_name(name)
        with tempfile.TemporaryDirectory(prefix="modelport-stage-") as tmp:
            stage = Path(tmp) / "artifact"
            fmt, config, needed = self._stage(model_or_path, stage, format, code_paths)
            if trust_pickle and config.get("serialization") in ("pickle", "joblib", "cloudpickle"):
                config["trust_pickle"] = True
            given = () if trusted_types is None or callable(trusted_types) else tuple(trusted_types)
            runtime, accepted = self._trial_load(stage, fmt, config, needed, given, trusted_types)
            try:
                example = self._example(input_example, training_data)
                sig = signature
                if example is not None:
                    outputs = runtime.predict(example)
                    sig = (signature or Signature.infer(example)).with_outputs(outputs)
            finally:
                runtime.unload()
            datasets, profile, fingerprint = self._datasets(name, training_data, validation_data)
            if profile is not None and sig is not None and sig.kind == "columns":
                keep = set(sig.input_names)
                profile = replace(
                    profile, features=tuple(f for f in profile.features if f.name in keep)
                )
            version = self.service.register(
                VersionDraft(
                    name=name,
                    source=stage,
                    format=fmt,
                    runtime_config=config,
                    signature=sig,
                    input_example=encode(head(example, EXAMPLE_ROWS))
                    if example is not None
                    else None,
                    metrics=dict(metrics or {}),
                    params={k: str(v) for k, v in (params or {}).items()},
                    tags=dict(tags or {}),
                    description=description,
                    lineage=Lineage(
                        code_revision=code_revision(),
                        source=source
                        or (str(model_or_path) if isinstance(model_or_path, str | Path) else None),
                        training_data_fingerprint=fingerprint,
                    ),
                    environment=self._lock(stage, fmt, config),
                    profile=profile,
                    trusted_types=accepted,
                    datasets=datasets,
                )
            )
            if fast_path and fmt == "sklearn":
                version = build_at_registration(self.service, version, stage)
        if alias is not None:
            self.set_alias(name, alias, version.number, reason="set at registration")
            version = self.get(version.ref)
        return version

    def _stage(
        self, model_or_path: Any, stage: Path, fmt: str | None, code_paths: Sequence[Path] | None
    ) -> tuple[str, dict[str, Any], tuple[str, ...]]:
        if isinstance(model_or_path, str | Path):
            src = Path(model_or_path)
            if not src.exists():
                raise InvalidInputError(f"model path {str(src)!r} does not exist")
            if src.is_dir():
                shutil.copytree(src, stage, symlinks=True)
            else:
                stage.mkdir()
                shutil.copy2(src, stage / src.name, follow_symlinks=False)
            detected, config = detect_path_format(stage if src.is_dir() else stage / src.name)
            if fmt is not None and fmt != detected:
                raise InvalidInputError(
                    f"{src.name!r} looks like a {detected!r} model, not {fmt!r}; "
                    "drop --format or give the right file"
                )
            return detected, dict(config), ()
        stage.mkdir()
        kwargs: dict[str, Any] = {"code_paths": code_paths} if code_paths else {}
        result = save_model(model_or_path, stage, format=fmt, **kwargs)
        return result.format, dict(result.config), tuple(result.untrusted_types)

    def _trial_load(
        self,
        stage: Path,
        fmt: str,
        config: Mapping[str, Any],
        needed: tuple[str, ...],
        given: tuple[str, ...],
        approver: Iterable[str] | TypeApprover | None,
    ) -> tuple[Runtime, tuple[str, ...]]:
        """Load the staged artifact once, asking for (or refusing) types outside skops' defaults.

        Only the types the artifact needs are recorded as trusted, never a wider list.
        """
        accepted = tuple(sorted(set(given) & set(needed))) if needed else given
        missing = sorted(set(needed) - set(given))
        for _ in range(2):
            if missing:
                if not (callable(approver) and approver(missing)):
                    raise UntrustedTypesError(
                        "the model needs types outside skops' trusted defaults: "
                        + ", ".join(missing)
                        + "; review them and re-register with --trust-type for each "
                        "(Python: trusted_types=[...])",
                        types=missing,
                    )
                accepted = tuple(sorted(set(accepted) | set(missing)))
            runtime = open_runtime(
                LoadContext(
                    path=stage,
                    format=fmt,
                    config=config,
                    trusted_types=accepted,
                    trust_pickle=bool(config.get("trust_pickle")),
                )
            )
            try:
                runtime.load()
            except UntrustedTypesError as exc:
                missing = sorted(set(exc.types) - set(accepted))
                if not missing:
                    raise
                continue
            return runtime, accepted
        raise UntrustedTypesError("the model still needs untrusted types after approval", missing)

    @staticmethod
    def _lock(stage: Path, fmt: str, config: Mapping[str, Any]) -> EnvironmentLock:
        """Pin the format's framework and dependencies; for Python-class models, whatever
        installed distributions its stored code imports (all of them pinned as frameworks)."""
        if fmt == "python":
            imported = imported_distributions(stage)
            return capture_lock(imported, frameworks=imported)
        return capture_lock(framework_packages(fmt, config))

    def _example(self, input_example: Any, training_data: Any) -> Any:
        if input_example is None:
            return None
        example = input_example
        if isinstance(example, str | Path):
            example = read_table(Path(example))
        return head(example, MAX_EXAMPLE_ROWS)

    def _datasets(
        self, name: str, training: Any, validation: Any
    ) -> tuple[tuple[DatasetRef, ...], DatasetProfile | None, str | None]:
        refs: list[DatasetRef] = []
        profile: DatasetProfile | None = None
        fingerprint: str | None = None
        for role, data in (("training", training), ("validation", validation)):
            if data is None:
                continue
            dataset = self._dataset_from(data, f"{name}-{role}")
            refs.append(DatasetRef(dataset.name, dataset.number, role, dataset.digest))
            if role == "training":
                profile, fingerprint = dataset.profile, dataset.digest
        return tuple(refs), profile, fingerprint

    def _dataset_from(self, data: Any, default_name: str) -> DatasetVersion:
        if isinstance(data, DatasetVersion):
            return data
        if isinstance(data, str) and not Path(data).exists() and _DATASET_REF.fullmatch(data):
            ds_name, _, number = data.partition(":")
            return self.service.get_dataset(ds_name, int(number))
        if isinstance(data, str | Path):
            return self.service.register_dataset(Path(data), default_name)
        if not _is_frame(data):
            raise InvalidInputError(
                "training/validation data must be a pandas DataFrame, a CSV/Parquet path "
                "or a dataset ref NAME:VERSION"
            )
        with tempfile.TemporaryDirectory(prefix="modelport-data-") as tmp:
            return self.service.register_dataset(write_frame(data, Path(tmp), "data"), default_name)

    # reading -------------------------------------------------------------------------------
    def get(self, ref: ModelRef | str) -> ModelVersion:
        return self.service.resolve(ref)

    def input_example(self, ref: ModelRef | str) -> Any:
        version = self.get(ref)
        return decode(version.input_example) if version.input_example is not None else None

    def list_models(self) -> list[RegisteredModel]:
        return self.service.list_models()

    def versions(self, name: str) -> list[ModelVersion]:
        return self.service.list_versions(name)

    def env_check(self, ref: ModelRef | str) -> list[Mismatch]:
        version = self.get(ref)
        return check_lock(version.environment) if version.environment is not None else []

    def build_fast_path(self, ref: ModelRef | str) -> ModelVersion:
        """Build (again) the ONNX variant of a scikit-learn version and record the outcome,
        verified or failed; a variant recorded before is replaced (audited)."""
        version = self.get(ref)
        if version.format != "sklearn":
            raise UnsupportedFormatError(
                f"{version.ref} is a {version.format} model; the ONNX fast path is built for "
                "scikit-learn versions"
            )
        return build_and_record(self.service, version, self.service.materialize(version))

    def load(
        self,
        ref: ModelRef | str,
        *,
        threads: int | None = None,
        variant: str = "auto",
    ) -> Runtime:
        """A loaded runtime for the version; every artifact digest is verified first.

        ``variant`` (``modelport.api.fastpath.VARIANTS``): ``"auto"`` serves the verified ONNX
        fast path when there is one and onnxruntime imports, else the framework; ``"original"``
        or ``"onnx"`` force one. A fast path runtime says ``metadata().extra["variant"] ==
        "onnx"``; a framework runtime has no ``"variant"`` key.
        """
        version = self.get(ref)
        mismatches = self.env_check(version.ref)
        worst = blocking(mismatches)
        if worst and self.settings.env_policy == "strict":
            raise EnvironmentMismatchError(
                f"{version.ref} was registered with "
                + ", ".join(f"{m.package} {m.locked}" for m in worst)
                + " but this interpreter has "
                + ", ".join(f"{m.package} {m.current or 'nothing'}" for m in worst)
                + f"; install the locked versions (modelport env check {version.ref}) "
                "or set env_policy=warn"
            )
        if worst:
            warnings.warn(
                f"{version.ref}: environment differs from its lock ("
                + ", ".join(f"{m.package} {m.locked} -> {m.current}" for m in worst)
                + f"); run `modelport env check {version.ref}`",
                EnvironmentMismatchWarning,
                stacklevel=2,
            )
        fast = load_variant(self.service, version, variant, threads)
        if fast is not None:
            return fast
        path = self.service.materialize(version)
        runtime = open_runtime(
            LoadContext(
                path=path,
                format=version.format,
                config=version.runtime_config,
                signature=version.signature,
                trusted_types=version.trusted_types,
                trust_pickle=bool(version.runtime_config.get("trust_pickle")),
                threads=threads,
            )
        )
        runtime.load()
        return runtime

    # aliases, datasets, audit --------------------------------------------------------------
    def set_alias(self, name: str, alias: str, version: int, reason: str = "") -> AliasMove:
        return self.service.set_alias(name, alias, version, reason)

    def delete_alias(self, name: str, alias: str, reason: str = "") -> AliasMove:
        return self.service.delete_alias(name, alias, reason)

    def alias_history(self, name: str, alias: str) -> list[AliasMove]:
        return self.service.alias_history(name, alias)

    def register_dataset(
        self, path: str | Path, name: str, description: str = ""
    ) -> DatasetVersion:
        return self.service.register_dataset(Path(path), name, description)

    def get_dataset(self, name: str, version: int | None = None) -> DatasetVersion:
        return self.service.get_dataset(name, version)

    def datasets(self, name: str | None = None) -> list[DatasetVersion]:
        return self.service.list_datasets(name)

    def audit(self, **filters: Any) -> list[AuditEvent]:
        return self.service.audit(**filters)

    # deployments and rollouts --------------------------------------------------------------
    def deploy(self, spec: DeploymentSpec | str | Path, *, dry_run: bool = False) -> DeployPlan:
        """Validate a spec (a ``DeploymentSpec`` or a YAML file), check that its refs resolve and
        record it as the endpoint's next revision (``dry_run``: only check). A running
        ``modelport serve`` starts the rollout from the recorded revision."""
        parsed = spec if isinstance(spec, DeploymentSpec) else read_spec(Path(spec))
        return deploy(self.service, parsed, dry_run=dry_run)

    def deployment(self, endpoint: str, revision: int | None = None) -> DeploymentRecord:
        return self.service.get_deployment(endpoint, revision)

    def deployments(self) -> list[DeploymentRecord]:
        return self.service.list_deployments()

    def rollout(self, endpoint: str) -> RolloutRecord | None:
        """The endpoint's rollout in progress, if any."""
        return self.service.current_rollout(endpoint)

    def rollouts(
        self, endpoint: str | None = None, active_only: bool = False
    ) -> list[RolloutRecord]:
        return self.service.list_rollouts(endpoint, active_only)

    def rollout_history(self, endpoint: str) -> list[RolloutEventRecord]:
        return self.service.rollout_history(endpoint)

    def rollout_command(self, endpoint: str, op: str, reason: str = "") -> RolloutCommandRecord:
        """Queue promote, rollback, abort, pause or resume for the rollout in progress; the
        controller acts on it."""
        return self.service.add_rollout_command(endpoint, op, reason)
