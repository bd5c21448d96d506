"""The deployment spec: one YAML document naming an endpoint, its versions and how to roll out.

``parse_spec(text, source)`` validates YAML text (the caller reads the file) and raises
``SpecError`` with one line per problem, each naming its place: ``deploy.yaml:
strategy.steps[2]: weights must increase (got 50 after 60)``. docs/deployment-spec.md is the
reference, with a complete example per strategy.

Units: weights and splits are whole percents of traffic sent to the candidate; rates, fractions
and agreement are fractions from 0 to 1; latencies are milliseconds; durations are seconds and the
YAML also takes strings such as ``"30s"``, ``"5m"``, ``"1h30m"``. A threshold set to ``null`` is
not checked. ``to_dict()`` is the canonical form (defaults filled in, durations in seconds) and
``digest()`` the sha256 of its canonical JSON, so a recorded spec can be compared with another.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import yaml
from annotated_types import Ge, Gt, Le
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    Strict,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from modelport.core.digest import sha256_bytes
from modelport.core.errors import InvalidInputError, SpecError
from modelport.core.names import validate_alias, validate_key, validate_name
from modelport.core.refs import ModelRef

__all__ = [
    "ABStrategy",
    "AnalysisThresholds",
    "BlueGreenStrategy",
    "CanaryStrategy",
    "DeploymentSpec",
    "DirectStrategy",
    "Gates",
    "MonitoringSpec",
    "RegressionGate",
    "Replicas",
    "Resources",
    "ShadowStrategy",
    "SmokeGate",
    "Strategy",
    "parse_duration",
    "parse_spec",
    "spec_from_dict",
]

STRATEGY_KINDS = ("direct", "canary", "shadow", "ab", "blue-green")
MAX_SPEC_CHARS = 1_000_000
MAX_DURATION_S = 30 * 24 * 3600
MAX_PROBLEMS_SHOWN = 20
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_HEADER = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}")
_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_CPU = re.compile(r"(?:\d+m|\d+(?:\.\d+)?)")
_MEMORY = re.compile(r"\d+(?:\.\d+)?(?:Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)?")

Loc = tuple[str | int, ...]


def _problems(*found: tuple[Loc, str]) -> PydanticCustomError:
    """One validation error carrying several problems, each at a path below the validator's."""
    return PydanticCustomError(
        "spec", "{summary}", {"summary": "; ".join(m for _, m in found), "problems": found}
    )


def parse_duration(value: object) -> float:
    """Seconds from a number of seconds or a string like ``"250ms"``, ``"30s"``, ``"1h30m"``."""
    hint = "a duration is a number of seconds or a string such as '30s', '5m' or '1h30m'"
    if isinstance(value, bool):
        raise InvalidInputError(hint)
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and len(value) <= 40 and _DURATION.fullmatch(value.strip()):
        parts = _DURATION_PART.findall(value.strip())
        seconds = sum(float(n) * _UNIT_S[unit] for n, unit in parts)
    else:
        raise InvalidInputError(hint)
    if not math.isfinite(seconds) or not 0 <= seconds <= MAX_DURATION_S:
        raise InvalidInputError(f"a duration is from 0 to {MAX_DURATION_S // 86400} days")
    return seconds


def _duration(value: object) -> float:
    try:
        return parse_duration(value)
    except InvalidInputError as exc:
        raise ValueError(exc.message) from exc


def _ref(value: object) -> ModelRef:
    if isinstance(value, ModelRef):
        ref = value
    elif isinstance(value, str):
        try:
            ref = ModelRef.parse(value)
        except InvalidInputError as exc:
            raise ValueError(exc.message) from exc
    else:
        raise ValueError("a ref is a string such as fraud:3 or fraud@champion")
    if ref.is_latest:
        raise ValueError(f"pin a version or an alias, e.g. {ref.name}:3 or {ref.name}@champion")
    return ref


def _quantity(value: object) -> object:
    if isinstance(value, bool):
        return value
    return str(value) if isinstance(value, int | float) else value


Duration = Annotated[float, BeforeValidator(_duration), Strict()]
PositiveDuration = Annotated[Duration, Gt(0)]
Ref = Annotated[ModelRef, PlainValidator(_ref), PlainSerializer(str, return_type=str)]
Weight = Annotated[int, Strict(), Gt(0), Le(100)]
Fraction = Annotated[float, Strict(), Ge(0), Le(1)]
Millis = Annotated[float, Strict(), Gt(0)]
Count = Annotated[int, Strict(), Ge(1)]
Flag = Annotated[bool, Strict()]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_steps(steps: tuple[int, ...]) -> tuple[int, ...]:
    found: list[tuple[Loc, str]] = []
    if len(steps) < 2:
        found.append(((), "give at least one weight below 100, then 100, e.g. [10, 50, 100]"))
    for i in range(1, len(steps)):
        if steps[i] <= steps[i - 1]:
            found.append(((i,), f"weights must increase (got {steps[i]} after {steps[i - 1]})"))
    if steps and steps[-1] != 100:
        found.append(((len(steps) - 1,), f"the last weight must be 100 (got {steps[-1]})"))
    if found:
        raise _problems(*found)
    return steps


class DirectStrategy(_Spec):
    """After the gates, the candidate takes all traffic in one move."""

    kind: Literal["direct"] = "direct"


class CanaryStrategy(_Spec):
    """Candidate weight rises through ``steps``; each step holds ``step_interval`` and must pass
    analysis. Reaching the final 100 is the promotion."""

    kind: Literal["canary"] = "canary"
    steps: tuple[Weight, ...] = Field(max_length=20)
    step_interval: PositiveDuration = 300.0

    @field_validator("steps")
    @classmethod
    def _steps(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        return _check_steps(value)


class ShadowStrategy(_Spec):
    """Mirror ``fraction`` of requests to the candidate (its answers never reach clients) for
    ``duration`` and at least ``min_requests`` compared requests; then promote, or canary
    through ``then``."""

    kind: Literal["shadow"]
    fraction: Annotated[float, Strict(), Gt(0), Le(1)] = 0.1
    timeout_ms: Millis = 1000.0
    duration: PositiveDuration = 600.0
    min_requests: Count | None = None
    then: CanaryStrategy | None = None


class ABStrategy(_Spec):
    """``split`` percent of cohorts (by ``sticky_key``) go to the candidate for ``duration``."""

    kind: Literal["ab"]
    split: Annotated[int, Strict(), Ge(1), Le(99)] = 50
    sticky_key: str
    duration: PositiveDuration

    @field_validator("sticky_key")
    @classmethod
    def _sticky(cls, value: str) -> str:
        source, _, name = value.partition(":")
        if source == "header" and _HEADER.fullmatch(name):
            return f"header:{name.lower()}"
        if source == "field" and _FIELD.fullmatch(name) and len(name) <= 200:
            return value
        raise ValueError(
            "use header:NAME (e.g. header:X-User-ID) or field:NAME (e.g. field:user_id)"
        )


class BlueGreenStrategy(_Spec):
    """After the gates and ``switch_after``, all traffic moves at once; the baseline stays loaded
    for ``verify_for`` (analysis on absolute thresholds), then the candidate is promoted."""

    kind: Literal["blue-green"]
    switch_after: Duration = 0.0
    verify_for: PositiveDuration = 300.0


Strategy = Annotated[
    DirectStrategy | CanaryStrategy | ShadowStrategy | ABStrategy | BlueGreenStrategy,
    Field(discriminator="kind"),
]


class AnalysisThresholds(_Spec):
    """Limits a stage must meet to advance; a breach with enough data fails the stage, too little
    data waits (and aborts after ``no_data_timeout``). Limits are inclusive. ``min_labels`` is
    the labeled requests ``min_accuracy`` needs (unused without it)."""

    min_requests: Count = 100
    max_error_rate: Fraction | None = 0.05
    max_error_rate_increase: Fraction | None = 0.01
    max_p95_ms: Millis | None = None
    max_p95_ratio: Annotated[float, Strict(), Ge(1)] | None = 1.5
    min_shadow_agreement: Fraction | None = 0.95
    min_accuracy: Fraction | None = None
    min_labels: Count = 50
    no_data_timeout: PositiveDuration = 1800.0


class SmokeGate(_Spec):
    """Before any traffic the candidate answers its input example and golden requests."""

    enabled: Flag = True
    latency_budget_ms: Millis = 1000.0

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: object) -> object:
        return {"enabled": data} if isinstance(data, bool) else data


class RegressionGate(_Spec):
    """Candidate vs baseline on a registered golden dataset ``name:version``.
    ``metric_tolerances`` is the largest allowed worsening of each metric, in its own unit."""

    dataset: str
    label_column: str | None = None  # true labels in the dataset: metric deltas need them
    metric_tolerances: dict[str, Annotated[float, Strict(), Ge(0)]] = Field(default_factory=dict)
    min_agreement: Fraction | None = None
    p95_budget_ms: Millis | None = None

    @field_validator("label_column")
    @classmethod
    def _label(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                validate_key(value, kind="label column")
            except InvalidInputError as exc:
                raise ValueError(exc.message) from exc
        return value

    @field_validator("dataset")
    @classmethod
    def _dataset(cls, value: str) -> str:
        name, sep, number = value.partition(":")
        if not sep or not number.isascii() or not number.isdigit() or int(number) < 1:
            raise ValueError(f"name a dataset version, e.g. {name[:40] or 'golden'}:1")
        try:
            validate_name(name, kind="dataset name")
        except InvalidInputError as exc:
            raise ValueError(exc.message) from exc
        return f"{name}:{int(number)}"

    @field_validator("metric_tolerances")
    @classmethod
    def _metrics(cls, value: dict[str, float]) -> dict[str, float]:
        for key in value:
            try:
                validate_key(key, kind="metric name")
            except InvalidInputError as exc:
                raise ValueError(exc.message) from exc
        return value


class Gates(_Spec):
    smoke: SmokeGate = Field(default_factory=SmokeGate)
    regression: RegressionGate | None = None
    allow_breaking_schema: Flag = False


class MonitoringSpec(_Spec):
    log_sample_rate: Fraction = 1.0
    redact: tuple[str, ...] = ()
    drift_psi: Annotated[float, Strict(), Gt(0)] | None = 0.2

    @field_validator("redact")
    @classmethod
    def _fields(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        found: list[tuple[Loc, str]] = []
        for i, name in enumerate(value):
            try:
                validate_key(name, kind="field name")
            except InvalidInputError as exc:
                found.append(((i,), exc.message))
            if name in value[:i]:
                found.append(((i,), f"{name!r} is listed twice; list each field once"))
        if found:
            raise _problems(*found)
        return value


class Replicas(_Spec):
    """Replica bounds for cluster rendering; ``max`` defaults to ``min``."""

    min: Annotated[int, Strict(), Ge(1), Le(1000)] = 1
    max: Annotated[int, Strict(), Ge(1), Le(1000)] = 1

    @model_validator(mode="before")
    @classmethod
    def _max_defaults_to_min(cls, data: object) -> object:
        if isinstance(data, Mapping) and "max" not in data and isinstance(data.get("min"), int):
            return {**data, "max": data["min"]}
        return data

    @model_validator(mode="after")
    def _ordered(self) -> Replicas:
        if self.max < self.min:
            raise _problems((("max",), f"must be at least min (got {self.max} < {self.min})"))
        return self


class Resources(_Spec):
    """Kubernetes quantities: ``cpu`` like ``"500m"`` or ``"2"``, ``memory`` like ``"1Gi"``."""

    cpu: Annotated[str, BeforeValidator(_quantity)] | None = None
    memory: Annotated[str, BeforeValidator(_quantity)] | None = None

    @field_validator("cpu")
    @classmethod
    def _cpu(cls, value: str | None) -> str | None:
        if value is not None and (not _CPU.fullmatch(value) or _zero(value)):
            raise ValueError("use millicores like '500m' or cores like '2' or '0.5'")
        return value

    @field_validator("memory")
    @classmethod
    def _memory(cls, value: str | None) -> str | None:
        if value is not None and (not _MEMORY.fullmatch(value) or _zero(value)):
            raise ValueError("use a quantity like '512Mi', '1Gi' or '2G'")
        return value


def _zero(quantity: str) -> bool:
    return float(re.sub(r"[A-Za-z]+$", "", quantity)) <= 0


class DeploymentSpec(_Spec):
    """What an endpoint serves and how a candidate earns its traffic."""

    spec_version: Literal[1] = 1
    endpoint: str
    model: str
    baseline: Ref
    candidate: Ref | None = None
    strategy: Strategy = Field(default_factory=DirectStrategy)
    analysis: AnalysisThresholds = Field(default_factory=AnalysisThresholds)
    on_failure: Literal["rollback", "pause"] = "rollback"
    promotion: Literal["auto", "manual"] = "auto"
    promote_alias: str | None = None
    gates: Gates = Field(default_factory=Gates)
    monitoring: MonitoringSpec = Field(default_factory=MonitoringSpec)
    replicas: Replicas = Field(default_factory=Replicas)
    resources: Resources = Field(default_factory=Resources)

    @model_validator(mode="before")
    @classmethod
    def _defaults_from_names(cls, data: object) -> object:
        """``model`` defaults to ``endpoint``; ``promote_alias`` to the baseline's alias."""
        if not isinstance(data, Mapping):
            return data
        data = dict(data)
        if "model" not in data and isinstance(data.get("endpoint"), str):
            data["model"] = data["endpoint"]
        baseline = data.get("baseline")
        if "promote_alias" not in data and isinstance(baseline, ModelRef) and baseline.alias:
            data["promote_alias"] = baseline.alias
        if "promote_alias" not in data and isinstance(baseline, str) and "@" in baseline:
            data["promote_alias"] = baseline.partition("@")[2]
        return data

    @field_validator("endpoint", "model")
    @classmethod
    def _names(cls, value: str, info: ValidationInfo) -> str:
        try:
            return validate_name(value, kind=f"{info.field_name} name")
        except InvalidInputError as exc:
            raise ValueError(exc.message) from exc

    @field_validator("promote_alias")
    @classmethod
    def _alias(cls, value: str | None) -> str | None:
        try:
            return None if value is None else validate_alias(value)
        except InvalidInputError as exc:
            raise ValueError(exc.message) from exc

    @model_validator(mode="after")
    def _consistent(self) -> DeploymentSpec:
        found: list[tuple[Loc, str]] = []
        for field in ("baseline", "candidate"):
            ref = getattr(self, field)
            if ref is not None and ref.name != self.model:
                hint = f"use {self.model}:N or {self.model}@ALIAS, or set model"
                found.append(((field,), f"{ref} is not a version of model {self.model!r}; {hint}"))
        kind = self.strategy.kind
        if self.candidate is None and kind != "direct":
            found.append((("candidate",), f"required for a {kind} rollout, e.g. {self.model}:4"))
        if self.candidate is not None and "strategy" not in self.model_fields_set:
            kinds = ", ".join(STRATEGY_KINDS)
            found.append((("strategy",), f"required with a candidate; set kind to one of {kinds}"))
        if self.candidate is not None and self.candidate == self.baseline:
            found.append((("candidate",), f"is the baseline ({self.baseline}); name another"))
        if kind == "direct" and self.promotion == "manual":
            found.append(
                (("promotion",), "manual needs a strategy with stages; use blue-green or canary")
            )
        if found:
            raise _problems(*found)
        return self

    def to_dict(self) -> dict[str, Any]:
        """The canonical form: every field, defaults filled in, whole numbers as integers."""
        result = _canonical(self.model_dump(mode="json"))
        assert isinstance(result, dict)
        return result

    def canonical_json(self) -> str:
        return json.dumps(
            self.to_dict(),
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=True,
            allow_nan=False,
        )

    def digest(self) -> str:
        """sha256 (hex) of the canonical JSON: equal for specs that mean the same thing."""
        return sha256_bytes(self.canonical_json().encode("ascii"))


def _canonical(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def parse_spec(text: str, source: str = "spec") -> DeploymentSpec:
    """Validate a deployment spec from YAML text; ``source`` (a file name) prefixes each problem.

    Raises ``SpecError`` with one ``source: path: message`` line per problem.
    """
    if len(text) > MAX_SPEC_CHARS:
        raise SpecError(source, [f"is over {MAX_SPEC_CHARS} characters; a spec is a short file"])
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise SpecError(source, [f"not valid YAML{where}; fix the syntax"]) from exc
    return spec_from_dict(document, source)


def spec_from_dict(document: object, source: str = "spec") -> DeploymentSpec:
    """Validate an already-parsed spec (a mapping), with ``parse_spec``'s error reporting."""
    if not isinstance(document, Mapping):
        raise SpecError(
            source, ["must be a mapping of fields (endpoint, baseline, candidate, strategy, ...)"]
        )
    try:
        return DeploymentSpec.model_validate(document)
    except ValidationError as exc:
        lines = [line for err in exc.errors(include_url=False) for line in _describe(err)]
        shown = lines[:MAX_PROBLEMS_SHOWN]
        if len(lines) > len(shown):
            shown.append(f"and {len(lines) - len(shown)} more problems")
        raise SpecError(source, shown) from exc


def _describe(err: Any) -> list[str]:
    raw: Loc = tuple(err["loc"])
    # a discriminated union puts the tag in the path (strategy.canary.steps): drop it
    loc = tuple(
        p
        for i, p in enumerate(raw)
        if not (i == 1 and raw[0] == "strategy" and p in STRATEGY_KINDS)
    )
    kind, ctx = err["type"], err.get("ctx") or {}
    kinds = ", ".join(STRATEGY_KINDS)
    if kind == "spec":
        return [f"{_path(loc + sub)}: {message}" for sub, message in ctx["problems"]]
    if kind == "union_tag_invalid":
        return [
            f"{_path((*loc, 'kind'))}: {_show(ctx['tag'])} is not a strategy; use one of {kinds}"
        ]
    if kind == "union_tag_not_found":
        return [f"{_path((*loc, 'kind'))}: required; use one of {kinds}"]
    if kind == "missing":
        return [f"{_path(loc)}: required; add it"]
    if kind == "extra_forbidden":
        return [f"{_path(loc)}: unknown field; remove it or fix its name"]
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return [f"{_path(loc)}: must be a mapping of fields"]
    message = str(err["msg"]).removeprefix("Value error, ").replace("Input should be", "must be")
    if kind == "int_type":
        message = "must be a whole number"
    got = err.get("input")
    if (got is None or isinstance(got, str | int | float | bool)) and _show(got) not in message:
        message += f" (got {_show(got)})"
    return [f"{_path(loc)}: {message}"]


def _path(loc: Loc) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part == "[key]":
            text += " (key)"
        else:
            text += f".{part}" if text else str(part)
    return text or "(top level)"


def _show(value: object) -> str:
    shown = repr(value)
    shown = shown.encode("ascii", "backslashreplace").decode("ascii")
    return shown if len(shown) <= 40 else shown[:37] + "..."
