"""Loyalty IDs: format, check character, and what a cashier may type."""

from __future__ import annotations

import re

import pytest

from coalition.loyalty_id import (
    ALPHABET,
    LoyaltyIdError,
    _check_character,
    new_loyalty_id,
    new_referral_code,
    normalize_loyalty_id,
)

FORMAT = re.compile(r"^[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}$")
SAMPLE = [new_loyalty_id() for _ in range(25)]


def is_valid(raw: str) -> bool:
    try:
        normalize_loyalty_id(raw)
    except LoyaltyIdError:
        return False
    return True


def complete(body: str) -> str:
    """The one valid ID with this 11-character body (found through the public API)."""
    [valid] = [body + c for c in ALPHABET if is_valid(body + c)]
    return normalize_loyalty_id(valid)


def fast_complete(body: str) -> str:
    """``complete`` through the module's own check function (checked against it above)."""
    return body + _check_character(body)


def test_alphabet_is_crockford_base32() -> None:
    assert len(ALPHABET) == len(set(ALPHABET)) == 32
    assert not set("ILOU") & set(ALPHABET)


def test_new_ids_are_formatted_and_valid() -> None:
    for lid in SAMPLE:
        assert FORMAT.match(lid), lid
        assert normalize_loyalty_id(lid) == lid
    assert len(set(SAMPLE)) == len(SAMPLE)


def test_every_body_has_exactly_one_check_character() -> None:
    for lid in SAMPLE[:5]:
        body = lid.replace("-", "")[:-1]
        assert complete(body) == lid
        assert fast_complete(body) == lid.replace("-", "")


def test_every_single_character_substitution_is_detected() -> None:
    for lid in SAMPLE:
        compact = lid.replace("-", "")
        for position, original in enumerate(compact):
            for substitute in ALPHABET:
                if substitute != original:
                    typo = compact[:position] + substitute + compact[position + 1:]
                    assert not is_valid(typo), (lid, position, substitute)


def test_adjacent_transpositions_are_detected_except_0_and_z() -> None:
    # every ordered pair of distinct characters, transposed at every adjacent position of some body
    missed = set()
    base = SAMPLE[0].replace("-", "")[:-1]
    for a in ALPHABET:
        for b in ALPHABET:
            if a == b:
                continue
            for position in range(len(base) - 1):  # the pair inside the body
                body = base[:position] + a + b + base[position + 2:]
                lid = fast_complete(body)
                swapped = lid[:position] + b + a + lid[position + 2:]
                if is_valid(swapped):
                    missed.add(frozenset((a, b)))
            # the last body character and the check character
            lid = fast_complete(base[:-1] + a)
            if lid[-1] != a:
                swapped = lid[:-2] + lid[-1] + lid[-2]
                if is_valid(swapped):
                    missed.add(frozenset((a, lid[-1])))
    assert missed == {frozenset("0Z")}


@pytest.mark.parametrize(("typed", "canonical_char"), [("O", "0"), ("o", "0"), ("I", "1"), ("i", "1"),
                                                        ("L", "1"), ("l", "1")])
def test_look_alike_letters_read_as_digits(typed: str, canonical_char: str) -> None:
    lid = complete("0123456789A")
    compact = lid.replace("-", "")
    position = compact.index(canonical_char)
    mistyped = compact[:position] + typed + compact[position + 1:]
    assert normalize_loyalty_id(mistyped) == lid


def test_lowercase_spaces_and_missing_dashes_are_accepted() -> None:
    lid = SAMPLE[1]
    compact = lid.replace("-", "")
    for typed in (lid.lower(), compact, compact.lower(), " ".join(compact), f"  {lid}\t", lid.replace("-", " ")):
        assert normalize_loyalty_id(typed) == lid, typed


@pytest.mark.parametrize("raw", ["", "ABCD-EFGH-JKM", "ABCD-EFGH-JKMNP", "0" * 20])
def test_wrong_length_is_refused(raw: str) -> None:
    with pytest.raises(LoyaltyIdError, match="12 characters"):
        normalize_loyalty_id(raw)


@pytest.mark.parametrize("bad", ["U", "u", "!", "_", "é", "*"])
def test_characters_outside_the_alphabet_are_refused(bad: str) -> None:
    compact = SAMPLE[2].replace("-", "")
    with pytest.raises(LoyaltyIdError, match="cannot contain"):
        normalize_loyalty_id(compact[:3] + bad + compact[4:])


def test_a_mistyped_check_character_is_refused() -> None:
    lid = SAMPLE[3]
    wrong = lid[:-1] + next(c for c in ALPHABET if c != lid[-1])
    with pytest.raises(LoyaltyIdError, match="check character"):
        normalize_loyalty_id(wrong)


def test_referral_codes_use_the_alphabet() -> None:
    codes = [new_referral_code() for _ in range(50)]
    assert all(len(code) == 8 and set(code) <= set(ALPHABET) for code in codes)
    assert len(set(codes)) == len(codes)
