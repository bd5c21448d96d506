"""Wiring the registry into the data plane: the app factory worker processes call."""

from __future__ import annotations

from modelport.api.registry import Registry
from modelport.core.model import ModelVersion
from modelport.core.settings import Settings
from modelport.runtime.base import Runtime
from modelport.serving.app import App, create_app
from modelport.serving.config import ServeConfig

__all__ = ["build_app"]


def build_app(settings: Settings, config: ServeConfig) -> App:
    """A data-plane app over the registry ``settings`` describe (picklable for spawn workers)."""
    registry = Registry.open(settings=settings)
    threads = config.framework_threads()

    def load(version: ModelVersion) -> Runtime:
        return registry.load(version.ref, threads=threads, variant=config.variant)

    return create_app(config, registry.get, load, on_close=registry.close)
