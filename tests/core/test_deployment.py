from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pydantic
import pytest
import yaml

from modelport.core import deployment
from modelport.core.deployment import (
    ABStrategy,
    BlueGreenStrategy,
    CanaryStrategy,
    DeploymentSpec,
    DirectStrategy,
    ShadowStrategy,
    parse_duration,
    parse_spec,
    spec_from_dict,
)
from modelport.core.errors import InvalidInputError, SpecError
from modelport.core.refs import ModelRef

BASE: dict[str, Any] = {
    "endpoint": "fraud",
    "baseline": "fraud@champion",
    "candidate": "fraud:4",
    "strategy": {"kind": "canary", "steps": [10, 50, 100], "step_interval": "5m"},
}

EXAMPLES = {
    "direct-baseline-only": "endpoint: fraud\nbaseline: fraud:3\n",
    "direct": "endpoint: fraud\nbaseline: fraud:3\ncandidate: fraud:4\nstrategy: {kind: direct}\n",
    "canary": """
endpoint: fraud
baseline: fraud@champion
candidate: fraud:4
strategy:
  kind: canary
  steps: [5, 25, 50, 100]
  step_interval: 5m
analysis:
  min_requests: 200
  max_error_rate: 0.02
  max_error_rate_increase: 0.005
  max_p95_ms: 250
  max_p95_ratio: 1.3
  min_accuracy: 0.9
  min_labels: 100
  no_data_timeout: 1h
on_failure: pause
gates:
  smoke: {latency_budget_ms: 500}
  regression:
    dataset: golden:3
    metric_tolerances: {accuracy: 0.01, rmse: 0.5}
    min_agreement: 0.98
    p95_budget_ms: 200
  allow_breaking_schema: false
monitoring: {log_sample_rate: 0.1, redact: [ssn, email], drift_psi: 0.25}
replicas: {min: 2, max: 6}
resources: {cpu: 500m, memory: 1Gi}
""",
    "shadow": """
endpoint: fraud
baseline: fraud@champion
candidate: fraud@challenger
strategy: {kind: shadow, fraction: 0.25, timeout_ms: 300, duration: 10m, min_requests: 500}
analysis: {min_shadow_agreement: 0.97}
""",
    "shadow-then-canary": """
endpoint: fraud
baseline: fraud@champion
candidate: fraud:4
strategy:
  kind: shadow
  fraction: 0.5
  duration: 15m
  then: {steps: [10, 100], step_interval: 2m}
""",
    "ab": """
endpoint: recs
model: recommender
baseline: recommender:7
candidate: recommender:8
strategy: {kind: ab, split: 20, sticky_key: header:X-User-ID, duration: 2d}
""",
    "blue-green": """
endpoint: fraud
baseline: fraud:3
candidate: fraud:4
strategy: {kind: blue-green, switch_after: 1m, verify_for: 10m}
promotion: manual
""",
}


def problems(doc: dict[str, Any] | str) -> list[str]:
    text = doc if isinstance(doc, str) else yaml.safe_dump(doc)
    with pytest.raises(SpecError) as info:
        parse_spec(text, "deploy.yaml")
    err = info.value
    assert str(err).splitlines() == [f"deploy.yaml: {p}" for p in err.problems]
    return list(err.problems)


def patched(**changes: Any) -> dict[str, Any]:
    """BASE with dotted-path changes (``strategy__steps=[...]``); None removes a key."""
    doc = copy.deepcopy(BASE)
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        node = doc
        for key in parents:
            node = node.setdefault(key, {})
        if value is None:
            node.pop(last, None)
        else:
            node[last] = value
    return doc


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_every_example_parses_and_round_trips(name: str) -> None:
    spec = parse_spec(EXAMPLES[name], f"{name}.yaml")
    again = spec_from_dict(json.loads(spec.canonical_json()))
    assert again == spec
    assert again.digest() == spec.digest()
    assert len(spec.digest()) == 64


def test_each_strategy_has_its_model() -> None:
    kinds = {name: parse_spec(text).strategy for name, text in EXAMPLES.items()}
    assert isinstance(kinds["direct"], DirectStrategy)
    assert isinstance(kinds["canary"], CanaryStrategy)
    assert kinds["canary"].steps == (5, 25, 50, 100)
    assert kinds["canary"].step_interval == 300
    shadow = kinds["shadow"]
    assert isinstance(shadow, ShadowStrategy)
    assert (shadow.fraction, shadow.timeout_ms, shadow.duration) == (0.25, 300, 600)
    assert shadow.min_requests == 500
    assert shadow.then is None
    chained = kinds["shadow-then-canary"]
    assert isinstance(chained, ShadowStrategy)
    assert chained.then is not None
    assert chained.then.steps == (10, 100)
    assert chained.then.step_interval == 120
    ab = kinds["ab"]
    assert isinstance(ab, ABStrategy)
    assert (ab.split, ab.sticky_key, ab.duration) == (20, "header:x-user-id", 2 * 86400)
    bg = kinds["blue-green"]
    assert isinstance(bg, BlueGreenStrategy)
    assert (bg.switch_after, bg.verify_for) == (60, 600)


def test_full_canary_example_fields() -> None:
    spec = parse_spec(EXAMPLES["canary"])
    assert spec.baseline == ModelRef("fraud", alias="champion")
    assert spec.candidate == ModelRef("fraud", version=4)
    assert spec.analysis.max_p95_ms == 250
    assert spec.analysis.no_data_timeout == 3600
    assert spec.on_failure == "pause"
    assert spec.gates.smoke.enabled
    assert spec.gates.smoke.latency_budget_ms == 500
    assert spec.gates.regression is not None
    assert spec.gates.regression.dataset == "golden:3"
    assert spec.gates.regression.metric_tolerances == {"accuracy": 0.01, "rmse": 0.5}
    assert spec.monitoring.redact == ("ssn", "email")
    assert (spec.replicas.min, spec.replicas.max) == (2, 6)
    assert (spec.resources.cpu, spec.resources.memory) == ("500m", "1Gi")


def test_defaults() -> None:
    spec = parse_spec(yaml.safe_dump(BASE))
    assert spec.model == "fraud"
    assert spec.promote_alias == "champion"  # from the baseline's alias
    assert spec.on_failure == "rollback"
    assert spec.promotion == "auto"
    a = spec.analysis
    assert (a.min_requests, a.max_error_rate, a.max_error_rate_increase) == (100, 0.05, 0.01)
    assert (a.max_p95_ms, a.max_p95_ratio, a.min_shadow_agreement) == (None, 1.5, 0.95)
    assert (a.min_accuracy, a.min_labels, a.no_data_timeout) == (None, 50, 1800)
    assert spec.gates.smoke.enabled
    assert spec.gates.regression is None
    assert not spec.gates.allow_breaking_schema
    assert (spec.monitoring.log_sample_rate, spec.monitoring.drift_psi) == (1.0, 0.2)
    assert (spec.replicas.min, spec.replicas.max) == (1, 1)
    direct = parse_spec(EXAMPLES["direct-baseline-only"])
    assert isinstance(direct.strategy, DirectStrategy)
    assert direct.candidate is None
    assert direct.promote_alias is None  # baseline is a version, not an alias


def test_explicit_null_promote_alias_moves_no_alias() -> None:
    assert parse_spec(yaml.safe_dump(patched(promote_alias=None))).promote_alias == "champion"
    doc = {**BASE, "promote_alias": None}
    assert parse_spec(yaml.safe_dump(doc)).promote_alias is None


def test_python_callers_may_pass_refs() -> None:
    spec = DeploymentSpec.model_validate(
        {
            "endpoint": "fraud",
            "baseline": ModelRef("fraud", alias="champion"),
            "candidate": ModelRef("fraud", version=4),
            "strategy": DirectStrategy(),
        }
    )
    assert spec.promote_alias == "champion"
    assert spec == parse_spec(EXAMPLES["direct"].replace("fraud:3", "fraud@champion"))


def test_shorthands() -> None:
    spec = parse_spec(yaml.safe_dump(patched(gates={"smoke": False}, replicas={"min": 3})))
    assert not spec.gates.smoke.enabled
    assert (spec.replicas.min, spec.replicas.max) == (3, 3)
    cpu = parse_spec(yaml.safe_dump(patched(resources={"cpu": 2, "memory": "512Mi"})))
    assert cpu.resources.cpu == "2"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("5m", 300), ("1h30m", 5400), ("250ms", 0.25), ("2d", 172800), (90, 90)],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["5 minutes", "", "m5", True, -1, "31d", "1.5", None])
def test_bad_durations(text: object) -> None:
    with pytest.raises(InvalidInputError, match="duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("doc", "path", "fragment"),
    [
        (patched(strategy__steps=[10, 60, 50, 100]), "strategy.steps[2]", "must increase"),
        (patched(strategy__steps=[10, 50]), "strategy.steps[1]", "last weight must be 100"),
        (patched(strategy__steps=[100]), "strategy.steps", "at least one weight below 100"),
        (patched(strategy__steps=[12.5, 100]), "strategy.steps[0]", "whole number"),
        (patched(strategy__steps=[10, 150]), "strategy.steps[1]", "less than or equal to 100"),
        (patched(strategy__steps=[0, 100]), "strategy.steps[0]", "greater than 0"),
        (patched(strategy__step_interval="soon"), "strategy.step_interval", "'soon'"),
        (patched(strategy__step_interval=0), "strategy.step_interval", "greater than 0"),
        (patched(strategy__kind="canery"), "strategy.kind", "'canery' is not a strategy"),
        (patched(strategy={"steps": [10, 100]}), "strategy.kind", "required"),
        (patched(strategy="canary"), "strategy", "must be a mapping"),
        (patched(strategy__bogus=1), "strategy.bogus", "unknown field"),
        (
            patched(strategy={"kind": "shadow", "fraction": 0}),
            "strategy.fraction",
            "greater than 0",
        ),
        (
            patched(strategy={"kind": "shadow", "then": {"steps": [50, 10]}}),
            "strategy.then.steps[1]",
            "must increase",
        ),
        (
            patched(strategy={"kind": "ab", "sticky_key": "cookie:id", "duration": "1h"}),
            "strategy.sticky_key",
            "header:NAME",
        ),
        (
            patched(strategy={"kind": "ab", "split": 100, "sticky_key": "field:u", "duration": 9}),
            "strategy.split",
            "less than or equal to 99",
        ),
        (
            patched(strategy={"kind": "ab", "sticky_key": "field:u"}),
            "strategy.duration",
            "required",
        ),
        (
            patched(strategy={"kind": "blue-green", "switch_after": "later"}),
            "strategy.switch_after",
            "duration",
        ),
        (patched(endpoint="../etc"), "endpoint", "not allowed"),
        (patched(endpoint=None), "endpoint", "required"),
        (patched(baseline="fraud"), "baseline", "pin a version or an alias"),
        (patched(baseline="fraud:x"), "baseline", "positive integer"),
        (patched(baseline="other:3"), "baseline", "not a version of model 'fraud'"),
        (patched(candidate=None), "candidate", "required for a canary rollout"),
        (patched(candidate="fraud@champion"), "candidate", "is the baseline"),
        (patched(strategy=None), "strategy", "required with a candidate"),
        (patched(analysis__max_error_rate=2), "analysis.max_error_rate", "(got 2)"),
        (patched(analysis__min_requests=0), "analysis.min_requests", "greater than or equal"),
        (patched(analysis__max_p95_ratio=0.5), "analysis.max_p95_ratio", "greater than or"),
        (patched(analysis__min_labels=0), "analysis.min_labels", "greater than or equal to 1"),
        (patched(analysis__no_data_timeout="never"), "analysis.no_data_timeout", "duration"),
        (patched(analysis__max_p95_ms="fast"), "analysis.max_p95_ms", "valid number"),
        (patched(analysis__max_error_rate=True), "analysis.max_error_rate", "valid number"),
        (patched(on_failure="explode"), "on_failure", "'rollback' or 'pause'"),
        (
            patched(strategy={"kind": "direct"}, promotion="manual"),
            "promotion",
            "manual needs a strategy with stages",
        ),
        (patched(promote_alias="9lives"), "promote_alias", "alias '9lives' is not allowed"),
        (
            patched(gates__smoke={"latency_budget_ms": -1}),
            "gates.smoke.latency_budget_ms",
            "(got -1)",
        ),
        (patched(gates__regression={"dataset": "golden"}), "gates.regression.dataset", "golden:1"),
        (
            patched(gates__regression={"dataset": "g:1", "metric_tolerances": {"acc": -0.1}}),
            "gates.regression.metric_tolerances.acc",
            "greater than or equal to 0",
        ),
        (patched(gates__allow_breaking_schema="yes"), "gates.allow_breaking_schema", "boolean"),
        (patched(monitoring__log_sample_rate=1.5), "monitoring.log_sample_rate", "less than"),
        (patched(monitoring__redact=["ssn", "ssn"]), "monitoring.redact[1]", "listed twice"),
        (patched(monitoring__redact=["a/../b", "ok"]), "monitoring.redact[0]", "not allowed"),
        (patched(monitoring__drift_psi=0), "monitoring.drift_psi", "greater than 0"),
        (patched(replicas={"min": 3, "max": 2}), "replicas.max", "at least min (got 2 < 3)"),
        (patched(replicas={"min": 0}), "replicas.min", "greater than or equal to 1"),
        (patched(resources={"cpu": "lots"}), "resources.cpu", "millicores"),
        (patched(resources={"cpu": "0m"}), "resources.cpu", "millicores"),
        (patched(resources={"memory": "1 GB"}), "resources.memory", "'1Gi'"),
        (patched(spec_version=2), "spec_version", "must be 1"),
        (patched(canary={"steps": [1]}), "canary", "unknown field"),
    ],
)
def test_each_problem_names_its_field_path(doc: dict[str, Any], path: str, fragment: str) -> None:
    found = problems(doc)
    matching = [p for p in found if p.startswith(f"{path}: ")]
    assert matching, f"no problem at {path}: {found}"
    assert any(fragment in p for p in matching), matching


def test_the_documented_example_message() -> None:
    found = problems(patched(strategy__steps=[10, 30, 60, 50, 100]))
    assert found == ["strategy.steps[3]: weights must increase (got 50 after 60)"]


def test_every_problem_is_reported_on_its_own_line_without_pydantic_noise() -> None:
    doc = patched(
        strategy__steps=[10, 60, 50, 90],
        analysis__max_error_rate=2,
        on_failure="explode",
        replicas={"min": 3, "max": 2},
        unknown_key=1,
    )
    with pytest.raises(SpecError) as info:
        parse_spec(yaml.safe_dump(doc), "deploy.yaml")
    lines = str(info.value).splitlines()
    assert len(lines) == 6
    assert all(line.startswith("deploy.yaml: ") for line in lines)
    text = str(info.value)
    for noise in ("validation error", "pydantic", "type=", "input_value", "Value error"):
        assert noise not in text
    assert "deploy.yaml: unknown_key: unknown field; remove it or fix its name" in lines


def test_cross_field_problems_are_all_reported() -> None:
    doc = {**BASE, "baseline": "other@champion", "candidate": "other:4"}
    found = problems(doc)
    assert [p.split(":")[0] for p in found] == ["baseline", "candidate"]


def test_problem_count_is_capped() -> None:
    doc = patched(monitoring__redact=["a/../b"] * 40)
    found = problems(doc)
    assert len(found) == deployment.MAX_PROBLEMS_SHOWN + 1
    assert found[-1].startswith("and ")
    assert found[-1].endswith("more problems")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("endpoint: [fraud\n", "not valid YAML at line"),
        ("- fraud\n", "must be a mapping"),
        ("", "must be a mapping"),
        ("just text", "must be a mapping"),
    ],
)
def test_documents_that_are_not_specs(text: str, fragment: str) -> None:
    with pytest.raises(SpecError, match=fragment) as info:
        parse_spec(text, "deploy.yaml")
    assert str(info.value).startswith("deploy.yaml: ")


def test_oversized_text_is_refused_before_parsing() -> None:
    with pytest.raises(SpecError, match="characters"):
        parse_spec("#" * (deployment.MAX_SPEC_CHARS + 1))


def test_spec_error_is_an_invalid_input_error_with_a_code() -> None:
    with pytest.raises(InvalidInputError) as info:
        parse_spec("endpoint: fraud\n", "x.yaml")
    assert isinstance(info.value, SpecError)
    assert info.value.code == "invalid_spec"
    assert info.value.source == "x.yaml"
    assert info.value.problems == ("baseline: required; add it",)


def test_digest_is_stable_across_spellings_and_changes_with_meaning() -> None:
    spelled = """
strategy: {step_interval: 300, steps: [10, 50, 100], kind: canary}
candidate: fraud:4
baseline: fraud@champion
endpoint: fraud
model: fraud
analysis: {no_data_timeout: 30m}
"""
    a, b = parse_spec(yaml.safe_dump(BASE)), parse_spec(spelled)
    assert a.digest() == b.digest()
    assert a.canonical_json() == b.canonical_json()
    changed = parse_spec(yaml.safe_dump(patched(strategy__steps=[20, 50, 100])))
    assert changed.digest() != a.digest()
    header_case = [
        parse_spec(EXAMPLES["ab"].replace("X-User-ID", spelling)).digest()
        for spelling in ("x-user-id", "X-USER-ID")
    ]
    assert header_case[0] == header_case[1] == parse_spec(EXAMPLES["ab"]).digest()


def test_canonical_form() -> None:
    data = parse_spec(yaml.safe_dump(BASE)).to_dict()
    assert data["baseline"] == "fraud@champion"
    assert data["candidate"] == "fraud:4"
    assert data["strategy"] == {"kind": "canary", "steps": [10, 50, 100], "step_interval": 300}
    assert data["gates"]["smoke"] == {"enabled": True, "latency_budget_ms": 1000}
    assert isinstance(data["monitoring"]["log_sample_rate"], int)  # 1.0 -> 1
    text = parse_spec(yaml.safe_dump(BASE)).canonical_json()
    assert text == json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"))


def test_specs_are_frozen() -> None:
    spec = parse_spec(yaml.safe_dump(BASE))
    with pytest.raises(pydantic.ValidationError):
        spec.endpoint = "other"  # type: ignore[misc]
    assert isinstance(spec, DeploymentSpec)


def test_module_all_is_sorted() -> None:
    assert deployment.__all__ == sorted(deployment.__all__)
    for name in deployment.__all__:
        assert hasattr(deployment, name)


DOC = Path(__file__).resolve().parents[2] / "docs" / "deployment-spec.md"


def test_every_yaml_example_in_the_reference_parses() -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    assert len(blocks) == 5
    kinds = [parse_spec(block, "deployment-spec.md").strategy.kind for block in blocks]
    assert kinds == ["direct", "canary", "shadow", "ab", "blue-green"]


def test_the_reference_documents_every_field() -> None:
    text = DOC.read_text(encoding="utf-8")
    models: list[type[pydantic.BaseModel]] = [
        DeploymentSpec,
        CanaryStrategy,
        ShadowStrategy,
        ABStrategy,
        BlueGreenStrategy,
        deployment.AnalysisThresholds,
        deployment.RegressionGate,
        deployment.MonitoringSpec,
    ]
    for model in models:
        for name in model.model_fields:
            if name != "kind":
                assert f"`{name}`" in text or f"`regression.{name}`" in text, name


def test_regression_gate_names_its_label_column() -> None:
    spec = parse_spec(
        "endpoint: fraud\nbaseline: fraud@champion\ncandidate: fraud:4\n"
        "strategy: {kind: canary, steps: [50, 100], step_interval: 1m}\n"
        "gates: {regression: {dataset: golden:3, label_column: is_fraud}}\n",
        "d.yaml",
    )
    assert spec.gates.regression is not None
    assert spec.gates.regression.label_column == "is_fraud"
    with pytest.raises(SpecError, match=r"d.yaml: gates.regression.label_column: "):
        parse_spec(
            "endpoint: fraud\nbaseline: fraud@champion\ncandidate: fraud:4\n"
            "strategy: {kind: canary, steps: [50, 100], step_interval: 1m}\n"
            "gates: {regression: {dataset: golden:3, label_column: 'bad column!'}}\n",
            "d.yaml",
        )
