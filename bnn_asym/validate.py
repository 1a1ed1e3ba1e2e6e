"""Validation of user-given values, one dialect for the whole package.

A value is checked against a ``Rule`` (what is accepted, and a test) and named by ``where``: the owner
and the name the user wrote, so an error reads the same everywhere --

    nuts option num_warmup=-1 is not valid; accepted: an integer >= 0          (an engine option)
    MLP hidden='8' is not valid; accepted: an int (one hidden layer) or ...     (a network spec field)
    budget steps=0 is not valid; accepted: a number > 0                       (fit's budget)
    suite s.toml: networks[0].depth: 0 is not valid; accepted: an integer >= 1  (a key path in a file)

The owner is the thing the user configured: an engine's registry name, a spec's family, ``budget``,
``checkpoints``, or a suite file with the key path. A ``where`` that ends in ``:`` is a key path and is
followed by the value; any other is a name, joined to the value by ``=``.

>>> integer(minimum=1).check(3, "nuts option num_chains")
3
>>> one_of("cpu", "gpu").check("tpu", "device")
Traceback (most recent call last):
ValueError: device='tpu' is not valid; accepted: 'cpu', 'gpu'
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np


def invalid(where: str, value, accepted: str) -> ValueError:
    """The one error message: ``<where>=<value> is not valid; accepted: <accepted>``."""
    joined = f"{where} {value!r}" if where.endswith(":") else f"{where}={value!r}"
    return ValueError(f"{joined} is not valid; accepted: {accepted}")


@dataclass(frozen=True)
class Rule:
    """What a value must be: ``test(value)`` is true for accepted values; ``accepted`` says which they are;
    ``convert`` turns an accepted value into its canonical form (a list into a tuple, a numpy int into int)."""

    accepted: str
    test: Callable[[Any], bool]
    convert: Callable[[Any], Any] = lambda v: v

    def check(self, value, where: str):
        """``value`` in canonical form, or a ValueError naming ``where`` and what is accepted."""
        try:
            ok = bool(self.test(value))
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise invalid(where, value, self.accepted)
        return self.convert(value)


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def integer(minimum: int | None = None, maximum: int | None = None) -> Rule:
    """An integer (not a bool) within [minimum, maximum]."""
    bounds = [f">= {minimum}"] if minimum is not None else []
    bounds += [f"<= {maximum}"] if maximum is not None else []
    return Rule(
        "an integer" + (" " + " and ".join(bounds) if bounds else ""),
        lambda v: _is_int(v) and (minimum is None or v >= minimum) and (maximum is None or v <= maximum),
        int,
    )


def number(
    low: float | None = None,
    high: float | None = None,
    low_open: bool = True,
    high_open: bool = False,
    finite: bool = True,
) -> Rule:
    """A real number (not a bool), finite unless ``finite=False``, within the bounds (open or closed)."""
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {low:g}")
    if high is not None:
        parts.append(f"{'<' if high_open else '<='} {high:g}")
    accepted = ("a finite number" if finite else "a number") + (" " + " and ".join(parts) if parts else "")

    def test(v) -> bool:
        if not _is_number(v) or (finite and not math.isfinite(v)):
            return False
        if low is not None and (v <= low if low_open else v < low):
            return False
        return high is None or (v < high if high_open else v <= high)

    return Rule(accepted, test, float)


def fraction(closed: bool = False) -> Rule:
    """A number in (0, 1), or in [0, 1] with ``closed=True``."""
    rule = number(0.0, 1.0, low_open=not closed, high_open=not closed)
    return dataclasses.replace(rule, accepted="0 <= x <= 1" if closed else "0 < x < 1")


def one_of(*choices) -> Rule:
    """One of ``choices`` (compared by value; True and False are not taken for 1 and 0)."""

    def test(v) -> bool:
        return any(v == c and isinstance(v, bool) == isinstance(c, bool) for c in choices)

    return Rule(", ".join(map(repr, choices)), test)


BOOLEAN = one_of(True, False)


def optional(rule: Rule) -> Rule:
    """None, or what ``rule`` accepts."""
    return Rule(
        f"None or {rule.accepted}",
        lambda v: v is None or rule.test(v),
        lambda v: None if v is None else rule.convert(v),
    )


def any_number() -> Rule:
    return Rule("a number", _is_number, float)


def sequence_of(rule: Rule, accepted: str | None = None, allow_empty: bool = True) -> Rule:
    """A list or tuple whose every entry ``rule`` accepts; converted to a tuple."""

    def test(v) -> bool:
        return isinstance(v, (list, tuple)) and (allow_empty or len(v) > 0) and all(rule.test(x) for x in v)

    return Rule(
        accepted or f"a list of entries each {rule.accepted}", test, lambda v: tuple(rule.convert(x) for x in v)
    )


def check_nonempty_list(value, where: str) -> list:
    """``value`` is a non-empty list (a suite file's list of data sets, seeds, ...)."""
    if not isinstance(value, list) or not value:
        raise ValueError(f"{where} expected a non-empty list; got {value!r}")
    return value


def check_keys(table, where: str, accepted: Iterable[str], required: Iterable[str] = ()) -> None:
    """``table`` is a dict with no key outside ``accepted`` and every key of ``required``."""
    accepted, required = tuple(accepted), tuple(required)
    if not isinstance(table, dict):
        raise ValueError(f"{where} expected a table; got {type(table).__name__}")
    unknown = sorted(set(table) - set(accepted))
    if unknown:
        raise ValueError(f"{where} unknown key(s) {', '.join(map(str, unknown))}; accepted: {', '.join(accepted)}")
    missing = [k for k in required if k not in table]
    if missing:
        raise ValueError(f"{where} missing key(s) {', '.join(missing)}")


# ----- dataclasses whose fields carry their rules ---------------------------------------------------------------
def field(default=dataclasses.MISSING, rule: Rule | None = None, doc: str = "", **kwargs):
    """A dataclass field with its validation rule and a one-line description (shown by option listings)."""
    return dataclasses.field(default=default, metadata={"rule": rule, "doc": doc}, **kwargs)


def check_fields(obj, owner: str) -> None:
    """Check (and canonicalise, in place) every field of dataclass ``obj`` that carries a rule; errors name
    ``owner`` and the field: ``"<owner> <field>=<value> is not valid; accepted: ..."``."""
    for f in dataclasses.fields(obj):
        rule = f.metadata.get("rule")
        if rule is not None:
            object.__setattr__(obj, f.name, rule.check(getattr(obj, f.name), f"{owner} {f.name}".strip()))


__all__ = [
    "BOOLEAN",
    "Rule",
    "any_number",
    "check_fields",
    "check_keys",
    "check_nonempty_list",
    "field",
    "fraction",
    "integer",
    "invalid",
    "number",
    "one_of",
    "optional",
    "sequence_of",
]
