"""Settings, built once at the edge (CLI or app factory) and passed down.

Environment variables use the ``MODELPORT_`` prefix and are read only by ``Settings.from_env``,
never at import time.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Settings"]

_ENV = {
    "home": "MODELPORT_HOME",
    "registry_uri": "MODELPORT_REGISTRY_URI",
    "artifact_uri": "MODELPORT_ARTIFACT_URI",
    "s3_endpoint_url": "MODELPORT_S3_ENDPOINT_URL",
    "s3_region": "MODELPORT_S3_REGION",
    "env_policy": "MODELPORT_ENV_POLICY",
    "actor": "MODELPORT_ACTOR",
}


class Settings(BaseModel):
    """Where the registry lives and how strictly it behaves."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    home: Path = Field(
        default=Path(".modelport"),
        description="Embedded store directory (SQLite database, artifacts, cache). "
        "Env: MODELPORT_HOME.",
    )
    registry_uri: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the metadata database, e.g. "
        "postgresql+psycopg://user@host/db. Default: sqlite under home. "
        "Env: MODELPORT_REGISTRY_URI.",
    )
    artifact_uri: str | None = Field(
        default=None,
        description="Artifact store: a directory path or s3://bucket/prefix. Default: "
        "home/artifacts. Env: MODELPORT_ARTIFACT_URI.",
    )
    s3_endpoint_url: str | None = Field(
        default=None,
        description="Endpoint of an S3-compatible server. Env: MODELPORT_S3_ENDPOINT_URL.",
    )
    s3_region: str = Field(default="us-east-1", description="Env: MODELPORT_S3_REGION.")
    env_policy: Literal["warn", "strict"] = Field(
        default="warn",
        description="What loading does when the environment lock and the interpreter differ in "
        "a framework's major/minor version or Python minor: warn, or refuse (strict). "
        "Env: MODELPORT_ENV_POLICY.",
    )
    actor: str | None = Field(
        default=None,
        description="Who is acting, recorded in the audit log. Default: the OS user. "
        "Env: MODELPORT_ACTOR.",
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Settings from ``MODELPORT_*`` variables, with explicit ``overrides`` winning."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for field, var in _ENV.items():
            if env.get(var):
                values[field] = env[var]
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls.model_validate(values)

    def resolved_actor(self) -> str:
        if self.actor:
            return self.actor
        for name in ("MODELPORT_ACTOR", "USER", "LOGNAME"):
            if os.environ.get(name):
                return os.environ[name]
        try:
            return pwd.getpwuid(os.getuid()).pw_name
        except (KeyError, OSError):
            return f"uid:{os.getuid()}"
