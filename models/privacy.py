"""Identity numbers (GB 11643), masking and keyed hashing (rule R9)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from datetime import date
from typing import Annotated

from pydantic import StringConstraints

# GB 11643-1999: weights of the first 17 digits and the check character for sum mod 11.
_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK_CHARS = "10X98765432"

NATIONAL_ID_PATTERN = re.compile(r"(?<![0-9A-Za-z])(\d{17}[\dXx])(?![0-9A-Za-z])")
# Bank card/account numbers: 16 to 19 digits not part of a longer run.
ACCOUNT_PATTERN = re.compile(r"(?<!\d)(\d{16,19})(?!\d)")
# A bank account as aidflow shows it (``mask_account``): at most six digits, stars, the
# last four; a short number all stars. A field of this type refuses the full number, so
# none reaches a history, a trail event or a notification by a slip upstream (R9).
MaskedAccount = Annotated[
    str, StringConstraints(pattern=r"^(\d{0,6}\*+\d{4}|\*{1,8})$", max_length=19)
]


def national_id_check_char(first17: str) -> str:
    total = sum(int(c) * w for c, w in zip(first17, _WEIGHTS, strict=True))
    return _CHECK_CHARS[total % 11]


def national_id_problem(value: str) -> str | None:
    """Why ``value`` is not a valid 18-character national identity number, or None."""
    if len(value) != 18:
        return f"must have 18 characters, has {len(value)}"
    if not value[:17].isdigit():
        return "the first 17 characters must be digits"
    last = value[17].upper()
    if not (last.isdigit() or last == "X"):
        return "the last character must be a digit or X"
    try:
        date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        return "characters 7-14 are not a valid birth date"
    if national_id_check_char(value[:17]) != last:
        return "the check digit does not match (GB 11643)"
    return None


def is_valid_national_id(value: str) -> bool:
    return national_id_problem(value) is None


def mask_national_id(value: str) -> str:
    """``341221********1234``: region code and last four characters only."""
    if len(value) < 10:
        return "*" * len(value)
    return value[:6] + "*" * (len(value) - 10) + value[-4:]


def mask_account(value: str) -> str:
    """Bank account: first four and last four digits."""
    if len(value) <= 8:
        return "*" * len(value)
    return value[:4] + "*" * (len(value) - 8) + value[-4:]


def keyed_hash(key: bytes, value: str, *, length: int = 16) -> str:
    """HMAC-SHA256 of a normalised identifier, shortened (``short_digest``).

    Keyed so that a hash in a workflow id cannot be reversed by hashing every
    possible identity number (there are only ~10^11 plausible ones).
    """
    return short_digest(
        hmac.new(key, value.strip().upper().encode(), hashlib.sha256).digest(), length
    )


def short_digest(digest: bytes, length: int = 16) -> str:
    """A digest in lowercase base32, ``length`` characters. Not hex: sixteen hex digits
    are all decimal about once in 1,800, and an id ending in sixteen decimal digits reads
    as a bank account number to anyone checking R9 (the scan found two update ids so in
    a 1,000-application season)."""
    return base64.b32encode(digest).decode("ascii").rstrip("=").lower()[:length]


def mask_sensitive_text(text: str) -> str:
    """Mask every valid identity number and every long digit run in free text."""

    def _id(m: re.Match[str]) -> str:
        v = m.group(1)
        return mask_national_id(v) if is_valid_national_id(v) else v

    text = NATIONAL_ID_PATTERN.sub(_id, text)
    return ACCOUNT_PATTERN.sub(lambda m: mask_account(m.group(1)), text)
