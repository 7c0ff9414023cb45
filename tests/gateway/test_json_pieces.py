"""The response encoder's pieces (gateway/limits.json_pieces) give exactly the standard library's
text, whatever the value: the read compiler and the resolvers share it, and clients see the same
bytes as before it encoded in C."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from gateway.limits import Sized, json_pieces, limited_encoder

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text()
    | st.decimals(allow_nan=False, allow_infinity=False).map(str)
)
VALUES = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=6)
        | st.dictionaries(st.text(max_size=5), children, max_size=6)
        | st.dictionaries(st.integers() | st.booleans() | st.none(), children, max_size=3)
    ),
    max_leaves=60,
)


@given(VALUES)
def test_the_pieces_are_the_standard_librarys_text(value: object) -> None:
    assert "".join(json_pieces(value)) == json.dumps(value, ensure_ascii=False)


@given(VALUES)
def test_the_limited_encoder_answers_the_same_bytes_under_its_limit(value: object) -> None:
    expected = json.dumps(value, ensure_ascii=False).encode()
    assert limited_encoder(lambda: len(expected))(value) == expected
    if len(expected) > 1 and not isinstance(value, list):  # a list is a batch: one error each
        assert limited_encoder(lambda: len(expected) - 1)(value) != expected


@given(VALUES.filter(lambda v: isinstance(v, dict)))
def test_a_sized_response_is_encoded_in_one_call_to_the_same_bytes(
    value: dict[str, object],
) -> None:
    """A compiled read's response (``Sized``, with about its size) encodes to the same bytes
    whether its size is within half the limit (one call of the C encoder) or not (pieces)."""
    if not all(type(k) is str for k in value):
        return
    expected = json.dumps(value, ensure_ascii=False).encode()
    limit = 2 * len(expected) + 2
    assert limited_encoder(lambda: limit)(Sized(value, len(expected))) == expected
    assert limited_encoder(lambda: limit)(Sized(value, limit)) == expected  # over half: pieces


def test_a_sized_response_over_the_limit_is_refused_even_if_its_size_said_less() -> None:
    """The size a response comes with only chooses how it is encoded: the limit is checked
    on what was encoded (a size that understates cannot let a larger response through)."""
    value = {"data": {"beneficiary": {"name": "张" * 100}}}
    encoded = limited_encoder(lambda: 100)(Sized(value, 10))
    refused = json.loads(encoded)
    assert refused["data"] is None
    assert refused["errors"][0]["extensions"]["code"] == "BAD_INPUT"
    assert "MEDGW_MAX_RESPONSE_BYTES" in refused["errors"][0]["message"]
