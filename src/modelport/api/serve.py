"""Wiring the registry into the data plane: the app factory worker processes call."""

from __future__ import annotations

from modelport.api.registry import Registry
from modelport.api.rollouts import controller_runner, endpoint_plans, served_models
from modelport.core.model import ModelVersion
from modelport.core.settings import Settings
from modelport.registry.open import metadata_url
from modelport.runtime.base import Runtime
from modelport.serving.app import App, create_app
from modelport.serving.config import ServeConfig
from modelport.serving.endpoints import EndpointPlan
from modelport.serving.logs import configure_logging
from modelport.serving.monitor import resolve_log_url

__all__ = ["MONITORING_STATE_DIR", "build_app"]

#: Directory under the modelport home where a server keeps monitoring state (alert state).
MONITORING_STATE_DIR = "monitoring"


def build_app(settings: Settings, config: ServeConfig) -> App:
    """A data-plane app over the registry ``settings`` describe (picklable for spawn workers).

    Runs in each worker process: it sets up that process' logging (``config.log_format``) and
    monitors into ``monitor.resolve_log_url`` (the registry's PostgreSQL database in team mode,
    else ``monitoring.db`` under the home). The recorded endpoints of the served models are
    routed by their route tables, and (``config.rollouts``) one process per home runs the
    rollout controller (``api.rollouts``)."""
    configure_logging(config.log_format, config.log_level)
    registry = Registry.open(settings=settings)
    threads = config.framework_threads()

    def load(version: ModelVersion) -> Runtime:
        return registry.load(version.ref, threads=threads, variant=config.variant)

    try:
        log_url = resolve_log_url(config.monitoring, settings.home, metadata_url(settings))
    except BaseException:
        registry.close()
        raise
    read_endpoints = None
    if config.follow_deployments or config.endpoints:
        models = served_models(config.refs) if config.follow_deployments else set()

        def read_endpoints() -> list[EndpointPlan]:
            return endpoint_plans(registry, models, config.endpoints)

    run_controller = None
    if config.rollouts:
        run_controller = controller_runner(
            registry, config.rollout_interval_s, variant=config.variant
        )
    return create_app(
        config,
        registry.get,
        load,
        on_close=registry.close,
        log_url=log_url,
        state_dir=settings.home / MONITORING_STATE_DIR,
        read_endpoints=read_endpoints,
        run_controller=run_controller,
    )
