"""GB 11643 resident ID numbers: shape, birth date, check character, gender, mask."""

from __future__ import annotations

from datetime import date

import pytest

from gateway.resident_id import check_character, parse
from policies.errors import InvalidInput


def test_a_valid_number_gives_region_birth_date_and_gender() -> None:
    parsed = parse("11010519491231002X")
    assert parsed.region_code == "110105"
    assert parsed.birth_date == date(1949, 12, 31)
    assert parsed.gender == "FEMALE"
    assert parse("510402197001010013").gender == "MALE"


def test_lowercase_x_is_accepted_and_normalised() -> None:
    assert parse("11010519491231002x").number == "11010519491231002X"


@pytest.mark.parametrize(
    ("number", "reason"),
    [
        ("51040219700101001", "17 digits"),
        ("5104021970010100133", "17 digits"),
        ("51040219700101001A", "17 digits"),
        ("510402197002300013", "no such birth date 19700230"),
        ("510402187001010013", "before 1900"),
        ("510402197001010014", "check character should be 3"),
    ],
)
def test_invalid_numbers_name_the_field_and_value(number: str, reason: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse(number)
    assert caught.value.field == "idNumber"
    assert caught.value.value == number
    assert reason in str(caught.value)


def test_check_character_follows_iso_7064_mod_11_2() -> None:
    # Worked example of GB 11643-1999 appendix: 11010519491231002X.
    assert check_character("11010519491231002") == "X"
    assert check_character("51040219700101001") == "3"
