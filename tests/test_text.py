"""The shared text checks: what no idempotency key or text input may hold, and lone surrogates."""

from __future__ import annotations

import json

import pytest

from coalition.errors import InvalidInput, check_idempotency_key, check_text
from coalition.text import has_lone_surrogate, unsafe_character


@pytest.mark.parametrize("value", ["\x00", "a\x00", "\x1f", "\x7f", "\x85", "\x9f", "\ud800", "\udfff", "\u202e",
                                   "\u2066", "a\u202db"])
def test_unsafe_characters(value: str) -> None:
    assert unsafe_character(value) is not None


@pytest.mark.parametrize("value", ["plain", "Café ☕", "😀", "\U0001d518", "مخبز", "\u200d", "ß", "a b", "²"])
def test_printable_text_of_any_script_is_fine(value: str) -> None:
    assert unsafe_character(value) is None


def test_allowed_controls() -> None:
    assert unsafe_character("a\nb\r\n", allow="\r\n") is None
    assert unsafe_character("a\nb\x00", allow="\r\n") == "\x00"


@pytest.mark.parametrize("key", ["k\x00", "\x00", "k\x1b", "k\ud800", "k\u202e"])
def test_idempotency_keys_refuse_unsafe_characters(key: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        check_idempotency_key(key)
    assert refused.value.code == "INVALID_IDEMPOTENCY_KEY" and refused.value.field == "idempotencyKey"
    assert "\x00" not in refused.value.message and "\ud800" not in refused.value.message


@pytest.mark.parametrize("value", ["till\x004", "till\ud8004", "\u202eevil"])
def test_free_text_refuses_unsafe_characters(value: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        check_text(value, "reference", 128)
    assert refused.value.code == "INVALID_REFERENCE"


def test_free_text_keeps_good_text() -> None:
    assert check_text("  Café ☕ 😀  ", "name", 120) == "Café ☕ 😀"


@pytest.mark.parametrize(("value", "lone"), [
    ({"query": "x", "variables": {"a": ["b", {"c": "\ud800"}]}}, True), ({"\udc00": 1}, True),
    (json.loads('"a\\ud83d\\ude00b"'), False),  # JSON joins an escaped pair into one character
    ("\U0001f600", False), ({"a": [1, None, True, 1.5, "é"]}, False),
])
def test_lone_surrogates_anywhere_in_a_json_value(value: object, lone: bool) -> None:
    assert has_lone_surrogate(value) is lone
