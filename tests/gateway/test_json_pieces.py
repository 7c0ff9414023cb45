"""The response encoder's pieces (gateway/limits.json_pieces) give exactly the standard library's
text, whatever the value: the read compiler and the resolvers share it, and clients see the same
bytes as before it encoded in C."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from gateway.limits import json_pieces, limited_encoder

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
