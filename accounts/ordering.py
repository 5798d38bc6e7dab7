"""How people are listed: by name as a person reads it, annotator2 before annotator10."""

import re
from collections.abc import Iterable
from typing import TypeVar

T = TypeVar("T")
_DIGITS = re.compile(r"(\d+)")


def natural_key(name: str) -> tuple[tuple[int, int, str], ...]:
    """A sort key that compares runs of digits as numbers and letters without case
    (ties keep a stable order by the exact name)."""
    parts = tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part.casefold())
        for part in _DIGITS.split(name)
        if part
    )
    return (*parts, (-1, 0, name))  # a shorter name first: r-1 before r-1a


def by_username(users: Iterable[T]) -> list[T]:
    """Users (anything with a `username`) in natural order."""
    return sorted(users, key=lambda u: natural_key(u.username))  # type: ignore[attr-defined]


def natural_sorted(names: Iterable[str]) -> list[str]:
    return sorted(names, key=natural_key)
