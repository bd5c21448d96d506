"""Cached, bounded installs of the peer servers, each in its own venv under ``bench/.work/venvs``.

A peer is never installed into the project venv. An install that succeeded leaves
``.installed`` (the exact requirement list); a failed one leaves ``.failed`` with the reason,
which later runs reuse instead of trying again (``--reinstall-peers`` clears both).

Run alone to warm the cache: ``.venv/bin/python bench/venvs.py [mlflow mlserver bentoml]``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

WORK = Path(__file__).resolve().parent / ".work"
VENVS = WORK / "venvs"
INSTALL_TIMEOUT_S = 540


def _sklearn_pin() -> str:
    """The peers run the very scikit-learn the models were fitted with."""
    return f"scikit-learn=={version('scikit-learn')}"


def requirements() -> dict[str, list[str]]:
    pin = _sklearn_pin()
    return {
        "mlflow": ["mlflow>=3,<4", pin],
        # uvloop 0.22+ raises in asyncio.get_event_loop() where MLServer 1.7's inference-pool
        # workers call it at start (every worker dies): keep the uvloop MLServer was built for.
        "mlserver": ["mlserver>=1.6,<2", "mlserver-sklearn>=1.6,<2", "uvloop<0.22", pin],
        "bentoml": ["bentoml>=1.4,<2", pin],
    }


@dataclass(frozen=True)
class PeerEnv:
    name: str
    ok: bool
    python: Path | None
    reason: str = ""
    versions: dict[str, str] | None = None


def _base_python() -> str:
    """The interpreter the project venv was made from (``python -m venv`` from a venv works
    too, but the base one avoids nesting surprises)."""
    base = Path(sys.base_prefix) / "bin" / "python3"
    return str(base if base.exists() else sys.executable)


def _short(text: str, limit: int = 300) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    errors = [ln for ln in lines if "error" in ln.lower()] or lines[-3:]
    out = " | ".join(errors[-3:])
    return out[:limit]


def _versions(python: Path, packages: list[str]) -> dict[str, str]:
    code = (
        "import json,sys\nfrom importlib.metadata import version\nout={}\n"
        "for p in sys.argv[1:]:\n"
        "    try: out[p]=version(p)\n"
        "    except Exception: pass\n"
        "print(json.dumps(out))"
    )
    res = subprocess.run(
        [str(python), "-c", code, *packages], capture_output=True, text=True, timeout=60
    )
    try:
        parsed: dict[str, str] = json.loads(res.stdout)
    except ValueError:
        return {}
    return parsed


def ensure(name: str, *, reinstall: bool = False, timeout_s: float = INSTALL_TIMEOUT_S) -> PeerEnv:
    """The peer's venv, installing it when missing (bounded by ``timeout_s``)."""
    reqs = requirements()[name]
    venv = VENVS / name
    python = venv / "bin" / "python"
    done, failed = venv / ".installed", venv / ".failed"
    wanted = "\n".join(reqs)
    check = [
        "numpy",
        "pandas",
        "scikit-learn",
        "uvicorn",
        "uvloop",
        "starlette",
        "fastapi",
        "flask",
    ]
    main_pkgs = {"mlflow": ["mlflow"], "mlserver": ["mlserver", "mlserver-sklearn"]}
    check = main_pkgs.get(name, [name]) + check
    if reinstall and venv.exists():
        shutil.rmtree(venv)
    if done.exists() and done.read_text() == wanted and python.exists():
        return PeerEnv(name, True, python, versions=_versions(python, check))
    if failed.exists() and failed.read_text().startswith(wanted + "\n"):
        return PeerEnv(name, False, None, failed.read_text()[len(wanted) + 1 :].strip())
    if venv.exists():
        shutil.rmtree(venv)
    VENVS.mkdir(parents=True, exist_ok=True)
    log = WORK / "logs" / f"install-{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    try:
        subprocess.run([_base_python(), "-m", "venv", str(venv)], check=True, timeout=120)
        pip = [str(python), "-m", "pip", "--disable-pip-version-check", "install", "-q"]
        with log.open("w") as fh:
            remaining = lambda: max(10.0, timeout_s - (time.monotonic() - started))  # noqa: E731
            subprocess.run(
                [*pip, "--upgrade", "pip"],
                stdout=fh,
                stderr=subprocess.STDOUT,
                timeout=remaining(),
                check=True,
            )
            res = subprocess.run(
                [*pip, *reqs], stdout=fh, stderr=subprocess.STDOUT, timeout=remaining()
            )
        if res.returncode != 0:
            reason = f"pip failed: {_short(log.read_text())}"
            failed.write_text(wanted + "\n" + reason)
            return PeerEnv(name, False, None, reason)
    except subprocess.TimeoutExpired:
        reason = f"install took longer than {timeout_s:.0f} s"
        venv.mkdir(parents=True, exist_ok=True)
        failed.write_text(wanted + "\n" + reason)
        return PeerEnv(name, False, None, reason)
    except (OSError, subprocess.CalledProcessError) as exc:
        reason = f"venv/pip setup failed: {exc}"
        venv.mkdir(parents=True, exist_ok=True)
        failed.write_text(wanted + "\n" + reason)
        return PeerEnv(name, False, None, reason)
    done.write_text(wanted)
    return PeerEnv(name, True, python, versions=_versions(python, check))


def ensure_all(
    names: list[str], *, reinstall: bool = False, log: Callable[[str], None] | None = None
) -> dict[str, PeerEnv]:
    """Install the peers in parallel (pip is mostly waiting on the network)."""
    say = log or print
    out: dict[str, PeerEnv] = {}
    with ThreadPoolExecutor(max_workers=len(names) or 1) as pool:
        futures = {n: pool.submit(ensure, n, reinstall=reinstall) for n in names}
        for n, fut in futures.items():
            started = time.monotonic()
            env = fut.result()
            out[n] = env
            state = "ready" if env.ok else f"not installable here: {env.reason}"
            say(f"peer {n}: {state} ({time.monotonic() - started:.0f} s more)")
    return out


if __name__ == "__main__":
    os.environ.setdefault("PIP_NO_INPUT", "1")
    chosen = sys.argv[1:] or list(requirements())
    for env in ensure_all(chosen).values():
        print(env)
