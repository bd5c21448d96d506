"""Open the registry service that ``Settings`` describe (stores chosen by URI scheme)."""

from __future__ import annotations

from pathlib import Path

from modelport.core.errors import InvalidInputError, StoreUnavailableError
from modelport.core.settings import Settings
from modelport.registry.artifacts.factory import open_artifact_store
from modelport.registry.service import RegistryService
from modelport.registry.sql.store import SqlMetadataStore

__all__ = ["metadata_url", "open_service"]

_SCHEMES = ("sqlite", "postgresql")


def metadata_url(settings: Settings) -> str:
    """The metadata database URL: the configured one, or SQLite under the home directory."""
    if settings.registry_uri:
        scheme = settings.registry_uri.split(":", 1)[0].split("+", 1)[0]
        if scheme not in _SCHEMES:
            raise InvalidInputError(
                f"registry URI scheme {scheme!r} is not supported; use sqlite:///PATH or "
                "postgresql+psycopg://USER@HOST/DB"
            )
        return settings.registry_uri
    return f"sqlite:///{(settings.home / 'registry.db').resolve()}"


def _ensure_home(home: Path) -> None:
    try:
        home.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreUnavailableError(
            f"cannot create the modelport home {str(home)!r} ({exc.strerror}); "
            "choose a writable directory with --home or MODELPORT_HOME"
        ) from exc


def open_service(settings: Settings) -> RegistryService:
    """Open (and migrate) the metadata store and the artifact store."""
    _ensure_home(settings.home)
    meta = SqlMetadataStore.open(metadata_url(settings))
    try:
        artifacts = open_artifact_store(
            settings.artifact_uri,
            settings.home,
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region,
        )
    except BaseException:
        meta.close()
        raise
    return RegistryService(
        meta, artifacts, cache_dir=settings.home / "cache", actor=settings.resolved_actor()
    )
