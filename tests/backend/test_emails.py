"""The fast check of plain addresses gives what email-validator gives, for every address."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic.networks import validate_email
from pydantic_core import PydanticCustomError

from backend.api.emails import email_address

# Parts drawn near the pattern's edges: dots, hyphens, digits, case, IDNA prefixes,
# special-use names, lengths around the limits, characters the pattern does not take.
_local = st.text(alphabet='aZ09._+-!#~"é ', min_size=0, max_size=70)
_label = st.one_of(
    st.text(alphabet="aZ09-", min_size=0, max_size=66),
    st.sampled_from(["xn--p1ai", "test", "local", "localhost", "arpa", "onion", "invalid"]),
    st.sampled_from(["example", "COM", "io", "c", "123", "ex--ample", "münchen"]),
)
_domain = st.lists(_label, min_size=1, max_size=5).map(".".join)
_address = st.builds(lambda local, domain: f"{local}@{domain}", _local, _domain)
# Addresses close to plain ones, so that most reach the fast path and some just miss it.
_atom = st.text(alphabet="abzAZ09_+-", min_size=1, max_size=12)
_plain_local = st.lists(_atom, min_size=1, max_size=4).map(".".join)
_plain_label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True)
_tld = st.one_of(st.from_regex(r"[A-Za-z]{1,8}", fullmatch=True), _label)
_plain_address = st.builds(
    lambda local, labels, tld: f"{local}@{'.'.join([*labels, tld])}",
    _plain_local,
    st.lists(_plain_label, min_size=1, max_size=3),
    _tld,
)


def _full_check(value: str) -> str | Exception:
    try:
        return validate_email(value)[1]
    except PydanticCustomError as error:
        return error


def _fast_check(value: str) -> str | Exception:
    try:
        return email_address(value)
    except PydanticCustomError as error:
        return error


@settings(max_examples=3000, deadline=None)
@given(st.one_of(_plain_address, _address, st.text(max_size=30)))
@example("first.last@Example.COM")
@example("a@xn--p1ai.com")
@example("a@x.home.arpa")
@example("a" * 64 + "@example.com")
@example("a" * 65 + "@example.com")
@example("a@" + "b" * 63 + ".com")
@example("a@" + "b" * 64 + ".com")
@example("a@" + ".".join(["b" * 60] * 4) + ".com")
@example("Jane Doe <jane@example.com>")
def test_the_fast_check_answers_as_email_validator_does(value: str):
    full, fast = _full_check(value), _fast_check(value)
    if isinstance(full, Exception):
        assert isinstance(fast, Exception), f"{value!r} accepted as {fast!r}"
        assert str(fast) == str(full)
    else:
        assert fast == full


@pytest.mark.parametrize(
    ("value", "normalised"),
    [("first.last@Example.COM", "first.last@example.com"), ("a+tag@sub.example.org", None)],
)
def test_plain_addresses_keep_their_local_part_and_lower_their_domain(value, normalised):
    assert email_address(value) == (normalised or value)
