"""A masked phone or ID number never shows most of itself, whatever its length.

Before, every value of 7 digits or more kept its first 3 and last 4: a 7-digit number was shown whole
(``1234567`` → ``123****4567``) and an 8-character passport number kept 7 of its 8."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from store.masking import mask_id_number, mask_phone

DIGITS = st.text(alphabet="0123456789", min_size=7, max_size=20)


def _shown(original: str, masked: str) -> tuple[str, str]:
    head, _, tail = masked.partition("*")
    tail = tail.lstrip("*")
    assert original.startswith(head) and original.endswith(tail), (original, masked)
    return head, tail


@given(DIGITS)
def test_a_phone_number_hides_four_digits_and_shows_at_most_seven(digits: str) -> None:
    head, tail = _shown(digits, mask_phone(digits))
    assert len(head) + len(tail) <= min(7, len(digits) - 4)
    assert len(head) <= 3 and len(tail) <= 4


@given(st.text(alphabet="0123456789X", min_size=1, max_size=20))
def test_an_id_number_shows_less_than_half_of_itself(value: str) -> None:
    masked = mask_id_number(value)
    assert len(masked) == len(value)
    if len(value) <= 7:
        assert set(masked) == {"*"}
        return
    head, tail = _shown(value, masked)
    assert (len(head) + len(tail)) * 2 <= len(value) and len(head) + len(tail) <= 7


def test_the_usual_numbers_keep_their_usual_shape() -> None:
    assert mask_phone("+8613812345678") == mask_phone("13812345678") == "138****5678"
    assert mask_phone("1234567") == "1****67"
    assert mask_id_number("110101199001011234") == "110***********1234"
    assert mask_id_number("E12345678") == "E1*****78"
