"""Running the data plane: uvicorn workers sharing one socket, graceful SIGTERM handling."""

from __future__ import annotations

import logging
import multiprocessing
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

import uvicorn
from starlette.applications import Starlette

from modelport.monitoring.metrics import multiprocess_directory, worker_exited
from modelport.serving.app import server_state
from modelport.serving.config import ServeConfig

__all__ = ["bind_socket", "run"]

log = logging.getLogger("modelport.serving")
AppFactory = Callable[[], Starlette]


class _Server(uvicorn.Server):
    """uvicorn, plus: readiness turns false the moment SIGTERM/SIGINT arrives."""

    def __init__(self, config: uvicorn.Config, app: Starlette) -> None:
        super().__init__(config)
        self._app = app

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """Drain on the first signal (a second SIGINT forces exit); a completed graceful
        shutdown exits 0 instead of re-raising the signal as uvicorn would."""
        server_state(self._app).plane.draining = True
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
        else:
            self.should_exit = True


def bind_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _uvicorn_config(app: Starlette, config: ServeConfig) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        lifespan="on",
        log_level="warning",
        # uvicorn's records go to the root logger, so they come out in the server's log
        # format (``serving.logs.configure_logging``) rather than uvicorn's own text lines
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=int(config.grace_period_s) or None,
        timeout_keep_alive=30,
        loop="auto",
        http="auto",
    )


def _serve_one(factory: AppFactory, config: ServeConfig, sock: socket.socket) -> None:
    app = factory()
    _Server(_uvicorn_config(app, config), app).run(sockets=[sock])


def run(
    factory: AppFactory, config: ServeConfig, on_bound: Callable[[int], None] | None = None
) -> None:
    """Serve until SIGTERM/SIGINT. ``config.workers`` processes share one listening socket, and
    one metrics directory (created before they start, removed after they stop) so that
    ``/metrics`` in any of them counts the requests of all."""
    sock = bind_socket(config.host, config.port)
    port = int(sock.getsockname()[1])
    if on_bound is not None:
        on_bound(port)
    if config.workers == 1:
        _serve_one(factory, config, sock)
        return
    with multiprocess_directory() as metrics_dir:
        _supervise(factory, config, sock, metrics_dir)


def _supervise(
    factory: AppFactory, config: ServeConfig, sock: socket.socket, metrics_dir: Path
) -> None:
    """Keep ``config.workers`` processes serving ``sock``; restart one that dies (bounded);
    on SIGTERM/SIGINT pass SIGTERM on and wait up to the grace period."""
    ctx = multiprocessing.get_context("spawn")

    def spawn(index: int) -> multiprocessing.process.BaseProcess:
        proc = ctx.Process(
            target=_serve_one, args=(factory, config, sock), name=f"modelport-worker-{index}"
        )
        proc.start()
        return proc

    workers = [spawn(i) for i in range(config.workers)]
    stopping = False
    restarts: list[float] = []

    def stop(sig: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        while not stopping:
            time.sleep(0.2)
            for i, proc in enumerate(workers):
                if proc.is_alive() or stopping:
                    continue
                now = time.monotonic()
                restarts[:] = [t for t in restarts if now - t < 60]
                if len(restarts) >= 5 * config.workers:
                    log.error(
                        "workers keep dying (%d restarts in a minute); stopping", len(restarts)
                    )
                    stopping = True
                    break
                log.warning("worker %s exited with %s; restarting it", proc.name, proc.exitcode)
                if proc.pid is not None:
                    worker_exited(proc.pid, metrics_dir)
                restarts.append(now)
                workers[i] = spawn(i)
    finally:
        deadline = time.monotonic() + config.grace_period_s + 5
        for proc in workers:
            if proc.is_alive():
                proc.terminate()  # SIGTERM: each worker drains gracefully
        for proc in workers:
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()
                proc.join()
        sock.close()
