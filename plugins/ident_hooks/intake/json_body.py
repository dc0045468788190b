"""A pushed JSON body read into values PostgreSQL can keep, or the reason it cannot be.

Every JSON push kind reads its body here. Python's ``json`` takes more than RFC 8259 and more
than ``jsonb`` holds: ``NaN``, ``Infinity`` and ``-Infinity`` (not JSON), numbers that
overflow a float to ``inf`` (``1e999``; ``jsonb`` refuses both), lone surrogates such as
``"\\ud800"`` (valid escapes, but not Unicode text: neither UTF-8 nor ``jsonb`` can carry
them), and nesting as deep as the body allows (which exhausts Python's recursion long before
PostgreSQL's). Each of these is an ``UnreadableJson`` with a reason the sender can act on.
NUL characters (``\\u0000``, which ``jsonb`` and ``text`` refuse) are removed, as the
normaliser does for pulled records.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

# Deeper than any lead a form or a call-tracking service sends; well inside the recursion
# that reading, cleaning and storing a value needs.
MAX_DEPTH = 32
_SHOWN_NUMBER_CHARS = 24
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")  # a valid pair is decoded to one character


class UnreadableJson(ValueError):
    """The body cannot be kept as JSON; the message says why."""


def read_json(body: bytes) -> Any:
    """The body's JSON value, NUL characters removed; ``UnreadableJson`` otherwise."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise UnreadableJson(
            f"not UTF-8: byte 0x{body[error.start]:02x} at position {error.start}"
        ) from None
    try:
        value = json.loads(
            text, parse_constant=_refuse_constant, parse_float=_finite_float, parse_int=_integer
        )
    except RecursionError:
        raise UnreadableJson(f"nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as error:  # json.JSONDecodeError and the parse_* hooks below
        raise UnreadableJson(str(error)) from None
    return _kept(value, 0)


def _kept(value: Any, depth: int) -> Any:
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, dict | list):
        if depth == MAX_DEPTH:
            raise UnreadableJson(f"nested deeper than {MAX_DEPTH} levels")
        if isinstance(value, dict):
            return {_text(key): _kept(item, depth + 1) for key, item in value.items()}
        return [_kept(item, depth + 1) for item in value]
    return value


def _text(value: str) -> str:
    lone = _LONE_SURROGATE.search(value)
    if lone is not None:
        raise UnreadableJson(
            f"invalid Unicode: a lone surrogate \\u{ord(lone.group()):04x} in a string"
        )
    return value.replace("\x00", "") if "\x00" in value else value


def _shown(number: str) -> str:
    if len(number) > _SHOWN_NUMBER_CHARS:
        return number[:_SHOWN_NUMBER_CHARS] + "…"
    return number


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(number: str) -> float:
    value = float(number)
    if not math.isfinite(value):
        raise ValueError(f"number {_shown(number)} is out of range")
    return value


def _integer(number: str) -> int:
    try:
        return int(number)
    except ValueError:  # longer than Python's integer-conversion limit (4300 digits)
        raise ValueError(f"integer of {len(number.lstrip('-'))} digits is too long") from None
