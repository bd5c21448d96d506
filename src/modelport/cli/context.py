"""What every command shares: settings built once from global options and the registry."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import click

from modelport.api.registry import Registry
from modelport.core.settings import Settings

__all__ = ["AppContext", "pass_app"]


@dataclass
class AppContext:
    settings: Settings
    _registry: Registry | None = field(default=None, repr=False)

    def registry(self) -> Registry:
        if self._registry is None:
            self._registry = Registry.open(settings=self.settings)
        return self._registry

    def close(self) -> None:
        if self._registry is not None:
            self._registry.close()
            self._registry = None

    @classmethod
    def build(
        cls, home: Path | None, registry_uri: str | None, artifact_uri: str | None
    ) -> AppContext:
        return cls(
            Settings.from_env(home=home, registry_uri=registry_uri, artifact_uri=artifact_uri)
        )


pass_app = click.make_pass_decorator(AppContext)
