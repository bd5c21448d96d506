"""``modelport serve``'s monitoring options: refused before any worker starts when wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelport.cli.main import main


def run(home: Path, *args: str) -> int:
    return main(["--home", str(home), "serve", "m", "--port", "0", *args])


def test_bad_monitoring_options_exit_2_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    assert run(home, "--webhook", "http://hooks.example.com/x") == 2
    assert "webhook_allowed_hosts" in capsys.readouterr().err
    code = run(
        home, "--webhook", "http://evil.example.net/x", "--webhook-allow-host", "hooks.example.com"
    )
    assert code == 2
    assert "evil.example.net" in capsys.readouterr().err
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - {name: r, kind: error_rate, threshold: 2, window_s: 60}\n")
    assert run(home, "--alert-rules", str(rules)) == 2
    assert "rules[0] (rule 'r'): a error_rate threshold" in capsys.readouterr().err
    assert run(home, "--log-sample-rate", "2") == 2
    assert run(home, "--log-format", "xml") == 2
    assert not home.exists()  # nothing was opened or created
