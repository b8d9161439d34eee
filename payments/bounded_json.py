"""JSON from clients, parsed within bounds (SPEC section 1: never a 500 for bad input).

Python's parser recurses once per nesting level and converts integer literals of any
length, so `[[[[...` 100,000 deep ends in a RecursionError and a 5,000-digit number in a
ValueError about sys.set_int_max_str_digits(), or in seconds of CPU below that limit.
Every body a client sends is read through `loads`, which refuses both with a message meant
for the client. The size of a body is bounded by whoever reads it
(DATA_UPLOAD_MAX_MEMORY_SIZE).
"""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 64
MAX_INTEGER_DIGITS = 30  # 10^12 is the largest amount: 30 digits leave room for any id


class JSONRefused(ValueError):
    """Not JSON, or JSON beyond the bounds; the message speaks to the client."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _integer(literal: str) -> int:
    if len(literal.lstrip("-")) > MAX_INTEGER_DIGITS:
        raise JSONRefused(f"A number in the body has more than {MAX_INTEGER_DIGITS} digits.")
    return int(literal)


def _constant(name: str) -> Any:
    raise JSONRefused(f"{name} is not a JSON value.")


def loads(body: bytes | str) -> Any:
    """The JSON value of `body`. Raises JSONRefused for anything that is not JSON, is
    nested deeper than MAX_DEPTH or holds an integer longer than MAX_INTEGER_DIGITS."""
    try:
        value = json.loads(body, parse_int=_integer, parse_constant=_constant)
    except JSONRefused:
        raise
    except RecursionError:
        # The parser gave up near the interpreter's recursion limit, far past MAX_DEPTH.
        raise JSONRefused(_too_deep()) from None
    except json.JSONDecodeError as error:
        raise JSONRefused(
            f"The body is not valid JSON: {error.msg} (line {error.lineno}, column {error.colno})."
        ) from None
    except ValueError:  # bytes that are not UTF-8, UTF-16 or UTF-32
        raise JSONRefused("The body is not valid JSON: it is not UTF-8 text.") from None
    if _depth_exceeds(value, MAX_DEPTH):
        raise JSONRefused(_too_deep())
    return value


def _too_deep() -> str:
    return f"The body is nested more than {MAX_DEPTH} levels deep."


def _depth_exceeds(value: Any, limit: int) -> bool:
    """Whether arrays and objects nest deeper than `limit`; iterative, so it cannot recurse."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False
