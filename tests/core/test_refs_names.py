from __future__ import annotations

import pytest

from modelport.core.errors import InvalidNameError, InvalidRefError
from modelport.core.names import validate_alias, validate_key, validate_name
from modelport.core.refs import ModelRef


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("fraud", ModelRef("fraud")),
        ("fraud:3", ModelRef("fraud", version=3)),
        ("fraud@champion", ModelRef("fraud", alias="champion")),
        ("my.model-v2_x:12", ModelRef("my.model-v2_x", version=12)),
    ],
)
def test_parse_valid_refs(text: str, expected: ModelRef) -> None:
    ref = ModelRef.parse(text)
    assert ref == expected
    assert str(ref) == text


@pytest.mark.parametrize(
    "text",
    [
        "fraud:",
        "fraud:x",
        "fraud:-1",
        "fraud:0",
        "fraud:1.5",
        "fraud:\uff13",
        "",
        "x" * 300,
        "fraud@",
    ],
)
def test_parse_rejects_bad_refs(text: str) -> None:
    with pytest.raises((InvalidRefError, InvalidNameError)):
        ModelRef.parse(text)


@pytest.mark.parametrize(
    "name",
    [
        "../etc",
        "..",
        "a/b",
        "a\\b",
        "%2e%2e%2f",
        "a\x00b",
        "fr\u0430ud",  # Cyrillic a: a look-alike
        "-leading",
        ".hidden",
        "a;b",
        "x" * 101,
        "",
        "a..b",
        " spaced",
    ],
)
def test_names_reject_hostile_values(name: str) -> None:
    with pytest.raises(InvalidNameError):
        validate_name(name)


def test_error_message_does_not_echo_control_bytes() -> None:
    with pytest.raises(InvalidNameError) as info:
        validate_name("bad\x00name\u0430")
    assert "\x00" not in str(info.value)
    assert str(info.value).isascii()


def test_alias_and_key_rules() -> None:
    assert validate_alias("champion") == "champion"
    assert validate_key("val/accuracy") == "val/accuracy"
    for bad in ("1st", "a b", "a@b", "a:b"):
        with pytest.raises(InvalidNameError):
            validate_alias(bad)
