"""Mask personal data in what visitors type before it is stored: personnummer and samordningsnummer,
e-mail addresses and Swedish phone numbers.

Feedback is kept to improve the corpus; nobody needs a visitor's personnummer for that, and a question
like "Min son 120315-1234 har fått avslag, vad gäller?" must not end up in a database or a CSV file.
Masking errs on the side of masking: a ten-digit number shaped like a date is masked even when its
check digit is wrong (a mistyped personnummer is still personal data).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

PERSONNUMMER = "[personnummer]"
EMAIL = "[e-post]"
PHONE = "[telefonnummer]"

# YYMMDD or YYYYMMDD, then -, + (100 years or older) or nothing (or a space), then four digits. The day
# may be 61-91: a samordningsnummer is the birth date with 60 added to the day. Organisation numbers
# (month 20 or more) are public and stay.
_PNR = re.compile(
    r"(?<![\w+-])(?:(?:18|19|20)\d{2}|\d{2})(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01]|6[1-9]|[78]\d|9[01])"
    r"[-+ ]?\d{4}(?!\d)"
)
_EMAIL = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+", re.UNICODE)
# National (0...) or international (+46 / 0046) numbers: area code and subscriber number in groups
# separated by spaces, hyphens or a slash, e.g. 070-123 45 67, 08-123 456 78, +46 (0)31 12 34 56.
_PHONE = re.compile(
    r"(?<![\w+])(?:(?:\+|00)46[ -]?(?:\(0\)[ -]?)?|0)[1-9]\d{0,3}(?:[ /-]?\d{1,4}){1,4}(?!\d)"
)
_DATE_LIKE = re.compile(r"\d{1,2}[-./ ]\d{1,2}[-./ ]\d{2,4}")


def _phone_ok(match: str) -> bool:
    digits = re.sub(r"\D", "", match)
    if match.startswith(("+46", "0046")):
        digits = digits[2:] if match.startswith("+") else digits[4:]
        return 7 <= len(digits.lstrip("0")) <= 10
    return 8 <= len(digits) <= 11 and not _DATE_LIKE.fullmatch(match)


def find_personal_data(text: str) -> list[str]:
    """The personal data found in ``text``, as written there."""
    found = [m.group() for m in _PNR.finditer(text)] + [m.group() for m in _EMAIL.finditer(text)]
    rest = _EMAIL.sub(" ", _PNR.sub(" ", text))
    found += [m.group() for m in _PHONE.finditer(rest) if _phone_ok(m.group())]
    return found


def mask(text: str, only: Iterable[str] | None = None) -> str:
    """``text`` with personal data replaced by a marker. ``only``: mask just these strings (what the visitor
    typed, found with :func:`find_personal_data`) wherever they occur: for an answer, which may repeat the
    question but otherwise quotes the corpus, whose public phone numbers stay."""
    if not text:
        return text
    if only is not None:
        for value in sorted(set(only), key=len, reverse=True):
            if value:
                text = text.replace(value, _marker(value))
        return text
    text = _PNR.sub(PERSONNUMMER, text)
    text = _EMAIL.sub(EMAIL, text)
    return _PHONE.sub(lambda m: PHONE if _phone_ok(m.group()) else m.group(), text)


def _marker(value: str) -> str:
    if _EMAIL.fullmatch(value):
        return EMAIL
    return PERSONNUMMER if _PNR.fullmatch(value) else PHONE
