"""Alert rules: what to watch (p95 latency, error rate, drift, accuracy), the threshold, the window.

A rule file is YAML ``{"rules": [...]}``; ``load_rules`` validates it and reports every problem
with its place in the file (``rules[2].threshold: ...``). Direction is implied by the kind:
``accuracy`` fires when the value is *below* the threshold, every other kind when it is *above*
(strictly, in both cases, like the PromQL ``>`` / ``<`` that ``promrules`` writes).

Units: ``p95_latency`` in seconds; ``error_rate`` and ``accuracy`` as fractions in ``[0, 1]``;
``drift`` in the unit of its ``statistic`` (PSI, the KS distance or the chi-squared statistic).
``min_samples`` counts requests in the window (labeled rows for ``accuracy``): below it a rule
never fires, and a firing alert holds (marked stale) instead of resolving.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from modelport.core.errors import InvalidInputError, InvalidNameError
from modelport.core.names import validate_name

__all__ = [
    "AlertKind",
    "AlertRule",
    "DriftStatistic",
    "Severity",
    "load_rules",
    "validate_rules",
]

AlertKind = Literal["p95_latency", "error_rate", "drift", "accuracy"]
Severity = Literal["info", "warning", "critical"]
DriftStatistic = Literal["psi", "ks", "chi2"]

RULE_NAME = r"^[a-z0-9][a-z0-9_.-]{0,62}$"
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_WINDOW_S = 30 * 24 * 3600
MAX_ERRORS_SHOWN = 10


class AlertRule(BaseModel):
    """One alert rule. An alert instance is ``(rule, model, version[, feature])``: a rule for
    model ``"*"`` or without a version watches every model / version it gets figures for."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=RULE_NAME)
    kind: AlertKind
    model: str = "*"
    version: str | None = None
    threshold: float
    window_s: int = Field(ge=1, le=MAX_WINDOW_S)
    for_s: int = Field(default=0, ge=0, le=MAX_WINDOW_S)
    keep_firing_for_s: int = Field(default=0, ge=0, le=MAX_WINDOW_S)
    repeat_s: int | None = Field(default=None, ge=1)
    min_samples: int = Field(default=20, ge=0)
    severity: Severity = "warning"
    summary: str | None = Field(default=None, max_length=500)
    statistic: DriftStatistic = "psi"
    feature: str | None = Field(default=None, min_length=1, max_length=200)

    @field_validator("model")
    @classmethod
    def _model_name(cls, value: str) -> str:
        if value == "*":
            return value
        try:
            return validate_name(value)
        except InvalidNameError as exc:
            raise ValueError(f"{exc.message}, or '*' for every model") from exc

    @field_validator("version")
    @classmethod
    def _version(cls, value: str | None) -> str | None:
        if value is not None and not _VERSION.fullmatch(value):
            raise ValueError("a version is letters, digits, '_', '.' and '-' (e.g. '3')")
        return value

    @field_validator("feature", "summary")
    @classmethod
    def _printable(cls, value: str | None) -> str | None:
        if value is not None and _CONTROL.search(value):
            raise ValueError("control characters (newlines, tabs...) are not allowed")
        return value

    @model_validator(mode="after")
    def _threshold_fits_kind(self) -> AlertRule:
        t = self.threshold
        if not math.isfinite(t):
            raise ValueError("threshold must be a finite number")
        if self.kind == "p95_latency" and t <= 0:
            raise ValueError("a p95_latency threshold is seconds above 0 (0.25 = 250 ms)")
        if self.kind in ("error_rate", "accuracy") and not 0 <= t <= 1:
            raise ValueError(f"a {self.kind} threshold is a fraction from 0 to 1 (0.05 = 5%)")
        if self.kind == "drift" and t < 0:
            raise ValueError("a drift threshold is a score of 0 or more (PSI 0.2 is common)")
        if self.kind != "drift" and ({"statistic", "feature"} & self.model_fields_set):
            raise ValueError("statistic and feature apply to drift rules only; remove them")
        return self

    @property
    def fires_below(self) -> bool:
        """True when the alert fires on a value below the threshold (accuracy)."""
        return self.kind == "accuracy"

    def breached(self, value: float) -> bool:
        """Whether ``value`` is on the alerting side of the threshold (strictly)."""
        return value < self.threshold if self.fires_below else value > self.threshold


def load_rules(source: str | Path) -> tuple[AlertRule, ...]:
    """Rules from YAML ``{"rules": [...]}``: a ``Path`` (or a one-line string ending in ``.yaml``
    / ``.yml``) is read as a file, any other string is the YAML text itself.

    Raises ``InvalidInputError`` naming each bad rule by index, name and field path.
    """
    text, origin = _read(source)
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise InvalidInputError(
            f"{origin} is not valid YAML{where}; fix the syntax (a mapping with a 'rules' list)"
        ) from exc
    if document is None:
        document = {"rules": []}
    if not isinstance(document, Mapping) or set(document) - {"rules"}:
        raise InvalidInputError(
            f"{origin} must be a mapping with one key, 'rules', holding a list of rules"
        )
    raw = document.get("rules") or []
    if not isinstance(raw, list):
        raise InvalidInputError(f"{origin}: 'rules' must be a list of rules")
    return validate_rules(raw, origin=origin)


def validate_rules(raw: list[Any], *, origin: str = "alert rules") -> tuple[AlertRule, ...]:
    """``AlertRule``s from already-parsed dicts (or rules), with ``load_rules``' error reporting."""
    problems: list[str] = []
    rules: list[AlertRule] = []
    first_index: dict[str, int] = {}
    for index, item in enumerate(raw):
        where, label = f"rules[{index}]", ""
        if isinstance(item, AlertRule):
            rule = item
        elif not isinstance(item, Mapping):
            problems.append(f"{where}: a rule must be a mapping of fields")
            continue
        else:
            name = item.get("name")
            if isinstance(name, str) and re.fullmatch(RULE_NAME, name):
                label = f" (rule {name!r})"
            try:
                rule = AlertRule.model_validate(dict(item))
            except ValidationError as exc:
                problems.extend(_describe(where, label, exc))
                continue
        if rule.name in first_index:
            problems.append(
                f"{where}: rule name {rule.name!r} is also used by "
                f"rules[{first_index[rule.name]}]; give every rule its own name"
            )
            continue
        first_index[rule.name] = index
        rules.append(rule)
    if problems:
        shown = problems[:MAX_ERRORS_SHOWN]
        more = len(problems) - len(shown)
        tail = f"; and {more} more" if more else ""
        raise InvalidInputError(f"{origin} are not valid: " + "; ".join(shown) + tail)
    return tuple(rules)


def _describe(where: str, label: str, exc: ValidationError) -> list[str]:
    out = []
    for err in exc.errors(include_input=False, include_url=False):
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"])
        message = str(err["msg"]).removeprefix("Value error, ")
        out.append(f"{where}{path}{label}: {message}")
    return out


def _read(source: str | Path) -> tuple[str, str]:
    is_path = isinstance(source, Path) or (
        "\n" not in source and source.strip().endswith((".yaml", ".yml"))
    )
    if not is_path:
        return str(source), "alert rules"
    path = Path(source)
    try:
        return path.read_text(encoding="utf-8"), f"alert rules file {str(path)!r}"
    except OSError as exc:
        raise InvalidInputError(
            f"cannot read alert rules file {str(path)!r} ({exc.strerror}); check the path"
        ) from exc
    except UnicodeDecodeError as exc:
        raise InvalidInputError(
            f"alert rules file {str(path)!r} is not UTF-8 text; save it as UTF-8"
        ) from exc
