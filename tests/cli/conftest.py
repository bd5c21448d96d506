"""The CLI driven in process: ``cli("models", "list")`` returns what a user would read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from modelport.cli.main import main


class Cli:
    def __init__(self, home: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.home = home
        self.capsys = capsys

    def __call__(self, *args: str, code: int = 0) -> str:
        """Run ``modelport --home HOME ARGS``; assert the exit code; stdout for 0/1, else stderr."""
        self.capsys.readouterr()
        rc = main(["--home", str(self.home), *args])
        out, err = self.capsys.readouterr()
        assert rc == code, f"exit {rc} (wanted {code}); stdout={out!r} stderr={err!r}"
        return out if code in (0, 1) else err

    def json(self, *args: str, code: int = 0) -> Any:
        return json.loads(self(*args, "--json", code=code))


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(tmp_path / "home", capsys)
