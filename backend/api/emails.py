"""Email addresses: checked and normalised as ``email-validator`` does, common ones faster.

``email-validator`` (through pydantic's ``validate_email``) is the rule. Most addresses
customers type are plain ASCII (``first.last@example.com``); for those the rule comes down
to a pattern and a lower-case domain, which costs a fraction of the full check (IDNA,
Unicode normalisation, quoted local parts ...). Anything the pattern does not accept plainly
goes to the full check, which also gives the error messages. A property test holds the two to
the same answers.
"""

from __future__ import annotations

import re

from pydantic.networks import validate_email

# An ASCII local part of letters, digits and . _ + - (no dot first, last or twice in a row);
# a domain of at least two LDH labels (no hyphen first or last, no "--", so no IDNA "xn--"
# labels), ending in a label of letters only.
_PLAIN = re.compile(
    r"(?P<local>[A-Za-z0-9_+-]+(?:\.[A-Za-z0-9_+-]+)*)"
    r"@(?P<domain>(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z]{2,63})"
)
# Names email-validator refuses as special-use or reserved (its SPECIAL_USE_DOMAIN_NAMES).
_SPECIAL_USE = frozenset({"arpa", "invalid", "local", "localhost", "onion", "test"})


def email_address(value: str) -> str:
    """The normalised address, or pydantic's ``value_error`` saying what is wrong."""
    plain = _PLAIN.fullmatch(value)
    if (
        plain is not None
        and len(value) <= 254
        and len(plain["local"]) <= 64
        and "--" not in plain["domain"]
        and all(len(label) <= 63 for label in plain["domain"].split("."))
        and plain["domain"].rpartition(".")[2].lower() not in _SPECIAL_USE
    ):
        return f"{plain['local']}@{plain['domain'].lower()}"
    return validate_email(value)[1]
