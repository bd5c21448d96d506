"""Parsing ground-truth feedback: the JSON body and the id,label CSV file."""

from __future__ import annotations

import io
import math
from typing import Any

import orjson
import pytest

from modelport.core.errors import InvalidInputError, RequestTooLargeError
from modelport.monitoring.feedback import (
    MAX_FEEDBACK_ITEMS,
    MAX_ID_LENGTH,
    FeedbackItem,
    parse_feedback_csv,
    parse_feedback_json,
)

SECRET = "label-value-that-must-not-leak"


# -- JSON ---------------------------------------------------------------------------------------
def test_json_object_list_and_decoded_forms() -> None:
    one = parse_feedback_json(b'{"id": "r-1", "label": 1}')
    assert one == [FeedbackItem("r-1", 1)]
    body = [{"id": "a", "label": "cat"}, {"id": "b", "label": 2.5}, {"id": "c", "label": True}]
    expected = [FeedbackItem("a", "cat"), FeedbackItem("b", 2.5), FeedbackItem("c", True)]
    assert parse_feedback_json(orjson.dumps(body)) == expected
    assert parse_feedback_json(orjson.dumps(body).decode()) == expected
    assert parse_feedback_json(body) == expected  # already decoded by the server


def test_json_list_label_is_a_tuple_with_one_label_per_row() -> None:
    [item] = parse_feedback_json({"id": "r", "label": [1, 0, "x", 2.5]})
    assert item.label == (1, 0, "x", 2.5)


def test_json_id_of_the_maximum_length_is_accepted() -> None:
    [item] = parse_feedback_json({"id": "i" * MAX_ID_LENGTH, "label": 0})
    assert len(item.id) == MAX_ID_LENGTH


def test_json_that_does_not_parse_names_line_and_column() -> None:
    with pytest.raises(InvalidInputError, match=r"not valid JSON \(line 2, column \d+\)"):
        parse_feedback_json(b'{"id": "a",\n "label": }')


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("42", "must be an object"),
        ("[]", "list is empty"),
        ('["x"]', r"feedback\[0\]: must be an object"),
        ('[{"label": 1}]', r"feedback\[0\]: the 'id' field is missing"),
        ('[{"id": "a", "label": 1}, {"id": "b"}]', r"feedback\[1\]: the 'label' field is missing"),
        ('{"id": "a", "label": 1, "extra": 2}', r"unknown field\(s\) 'extra'"),
        ('{"id": 7, "label": 1}', "id must be a string.*got int"),
        ('{"id": "", "label": 1}', "id is empty"),
        ('{"id": "a\\u0000b", "label": 1}', "control characters"),
        ('{"id": "a", "label": null}', r"label is missing \(null\)"),
        ('{"id": "a", "label": "  "}', "label is empty"),
        ('{"id": "a", "label": {"k": 1}}', "must be a number, a string or a boolean.*got dict"),
        ('{"id": "a", "label": []}', "label list is empty"),
        ('{"id": "a", "label": [1, [2]]}', "row 1: the label must be a number"),
        ('{"id": "a", "label": [1, null]}', r"row 1: the label is missing"),
    ],
)
def test_json_errors_name_the_item_and_the_problem(body: str, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        parse_feedback_json(body)


def test_json_id_too_long_and_label_not_finite() -> None:
    with pytest.raises(InvalidInputError, match=r"feedback\[0\]: the id has 257 characters"):
        parse_feedback_json({"id": "x" * 257, "label": 1})
    with pytest.raises(InvalidInputError, match="not a finite number"):
        parse_feedback_json({"id": "a", "label": math.nan})
    with pytest.raises(InvalidInputError, match="at most 1024"):
        parse_feedback_json({"id": "a", "label": "y" * 1025})


def test_json_error_messages_never_repeat_labels_or_ids() -> None:
    bad: list[Any] = [
        {"id": "ok", "label": SECRET},
        {"id": SECRET, "label": [SECRET, None]},
    ]
    with pytest.raises(InvalidInputError) as info:
        parse_feedback_json(bad)
    assert "feedback[1], row 1" in str(info.value)
    assert SECRET not in str(info.value)


def test_json_with_too_many_items_is_refused() -> None:
    body = [{"id": str(i), "label": 1} for i in range(MAX_FEEDBACK_ITEMS + 1)]
    with pytest.raises(
        RequestTooLargeError, match=f"10001 items; send at most {MAX_FEEDBACK_ITEMS}"
    ):
        parse_feedback_json(orjson.dumps(body))
    assert len(parse_feedback_json(body[:MAX_FEEDBACK_ITEMS])) == MAX_FEEDBACK_ITEMS
    with pytest.raises(RequestTooLargeError):
        parse_feedback_json(body[:3], max_items=2)


# -- CSV ----------------------------------------------------------------------------------------
def test_csv_labels_are_numbers_or_strings() -> None:
    text = (
        "id,label\n"
        "a,1\n"
        "b,-2\n"
        "c,2.50\n"
        "d,1e-3\n"
        "e,cat\n"
        "f,007\n"
        "g, spam \n"
        'h,"[1, 0, 1]"\n'
        'i,"comma, inside"\n'
        "j,nan\n"
        "k,true\n"
    )
    items = parse_feedback_csv(text)
    labels = {item.id: item.label for item in items}
    assert labels == {
        "a": 1,
        "b": -2,
        "c": 2.5,
        "d": 0.001,
        "e": "cat",
        "f": "007",
        "g": "spam",
        "h": (1, 0, 1),
        "i": "comma, inside",
        "j": "nan",
        "k": "true",
    }
    assert type(labels["a"]) is int
    assert type(labels["c"]) is float


def test_csv_from_bytes_with_bom_crlf_blank_lines_and_a_file() -> None:
    data = "\ufeffID , Label\r\n\r\nr1,1\r\n r2 ,0\r\n\r\n".encode()
    expected = [FeedbackItem("r1", 1), FeedbackItem("r2", 0)]
    assert parse_feedback_csv(data) == expected
    assert parse_feedback_csv(io.StringIO(data.decode("utf-8-sig"), newline="")) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "is empty; it needs the header"),
        ("\n\n", "is empty"),
        ("id,label\n", "has a header but no data lines"),
        ("request,label\nr1,1\n", "line 1: the header must be 'id,label', got 'request,label'"),
        ("r1,1\nr2,0\n", "line 1: the header must be 'id,label'"),
        ("id,label\nr1,1\nr2,\n", "line 3: the label is empty"),
        ("id,label\n\nr1,  \n", "line 3: the label is empty"),
        ("id,label\nr1,1,2\n", "line 2: expected 2 fields \\(id,label\\), got 3"),
        ("id,label\nr1\n", "line 2: expected 2 fields"),
        ("id,label\n,1\n", "line 2: the id is empty"),
        (f"id,label\n{'x' * 257},1\n", "line 2: the id has 257 characters"),
        ('id,label\nr1,"[1, 2"\n', "line 2: a label starting with '\\[' must be a JSON list"),
        ('id,label\nr1,"[1, {}]"\n', "line 2, row 1: the label must be a number"),
        ('id,label\nr1,"a"b\n', "line 2: not valid CSV"),
    ],
)
def test_csv_errors_name_the_line(text: str, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        parse_feedback_csv(text)


def test_csv_line_numbers_count_physical_lines_of_quoted_fields() -> None:
    text = 'id,label\nr1,"multi\nline label"\nr2,\n'
    with pytest.raises(InvalidInputError, match="line 4: the label is empty"):
        parse_feedback_csv(text)


def test_csv_error_names_the_file_and_never_repeats_the_label() -> None:
    with pytest.raises(InvalidInputError) as info:
        parse_feedback_csv(f'id,label\nr1,"[{SECRET!r}, null]"\n', name="labels.csv")
    assert str(info.value).startswith("labels.csv line 2")
    assert SECRET not in str(info.value)


def test_csv_that_is_not_utf8_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="not UTF-8 text"):
        parse_feedback_csv(b"id,label\nr1,\xff\n")


def test_csv_with_too_many_lines_names_the_line_where_the_limit_was_passed() -> None:
    text = "id,label\n" + "".join(f"r{i},1\n" for i in range(4))
    with pytest.raises(RequestTooLargeError, match="more than 3 \\(at feedback CSV line 5\\)"):
        parse_feedback_csv(text, max_items=3)
    assert len(parse_feedback_csv(text, max_items=4)) == 4
