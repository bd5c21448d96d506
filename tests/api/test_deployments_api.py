"""``Registry.deploy`` and the rollout reads of the Python API, and the plan descriptions."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from modelport.api.deployments import describe, format_duration, read_spec
from modelport.api.registry import Registry
from modelport.core.deployment import parse_spec
from modelport.core.errors import (
    DeploymentNotFoundError,
    InvalidInputError,
    SpecError,
    VersionNotFoundError,
)
from modelport.core.settings import Settings
from modelport.registry.service import VersionDraft

SPEC = "endpoint: fraud\nbaseline: fraud:1\ncandidate: fraud:2\nstrategy: {kind: blue-green}\n"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def registry(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Registry]:
    uri = None if request.param == "sqlite" else str(request.getfixturevalue("pg_url"))
    settings = Settings(home=tmp_path / "home", registry_uri=uri, actor="ann")
    files = tmp_path / "files"
    files.mkdir()
    with Registry.open(settings=settings) as opened:
        for i in range(2):
            (files / "model.skops").write_bytes(bytes([i]))
            opened.service.register(VersionDraft("fraud", files, "sklearn"))
        yield opened


def test_deploy_from_a_file_or_a_spec(registry: Registry, tmp_path: Path) -> None:
    path = tmp_path / "deploy.yaml"
    path.write_text(SPEC)
    dry = registry.deploy(path, dry_run=True)
    assert (dry.record, dry.baseline_version, dry.candidate_version) == (None, 1, 2)
    with pytest.raises(DeploymentNotFoundError):
        registry.deployment("fraud")

    first = registry.deploy(str(path))
    assert first.revision == 1
    assert first.record is not None
    assert first.record.created_by == "ann"
    assert registry.deploy(parse_spec(SPEC)).unchanged
    assert registry.deployment("fraud", 1) == first.record
    assert registry.deployments() == [first.record]
    assert registry.rollout("fraud") is None
    assert registry.rollouts() == []
    assert registry.rollout_history("fraud") == []

    with pytest.raises(VersionNotFoundError, match="candidate fraud:3 does not resolve"):
        registry.deploy(parse_spec(SPEC.replace("fraud:2", "fraud:3")))


def test_read_spec_caps_and_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_bytes(b"#" * 1_000_001)
    with pytest.raises(SpecError, match=r"big\.yaml: is over"):
        read_spec(path)
    path.write_bytes(b"endpoint: \xff\n")
    with pytest.raises(SpecError, match="not UTF-8"):
        read_spec(path)
    with pytest.raises(InvalidInputError, match="cannot read spec file"):
        read_spec(tmp_path / "missing.yaml")


def test_durations_and_descriptions() -> None:
    assert [format_duration(s) for s in (0, 45, 60, 90, 119, 120, 300, 330, 3600, 5400)] == [
        "0 s",
        "45 s",
        "60 s",
        "90 s",
        "119 s",
        "2 min",
        "5 min",
        "330 s",
        "1 h",
        "90 min",
    ]
    assert describe(parse_spec(SPEC)) == (
        "blue-green: switch after 0 s, verify for 5 min, moves no alias"
    )
