"""What each engine is and which options it takes, from the engines themselves: the first line of the class
docstring, ``when_to_use``, and the ``Options`` dataclass whose fields carry their default, rule and
one-line description. ``bnn_asym.engine_options``, ``bnn-asym engines [NAME]`` and the option tables of
the docs (docs/guide/fitting.md, checked by a test) all read it here.

>>> [o.name for o in engine_options("map")][:3]
['num_steps', 'optimizer', 'batch_size']
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

from . import ENGINES, get_engine


class OptionInfo(NamedTuple):
    name: str
    default: Any
    accepted: str  # what the option's rule accepts
    doc: str  # one line: what the option does


def engine_options(name: str) -> list[OptionInfo]:
    """The options of engine ``name`` in the order they are declared, with defaults, accepted values and docs."""
    out = []
    for f in dataclasses.fields(get_engine(name).Options):
        rule = f.metadata.get("rule")
        out.append(OptionInfo(f.name, f.default, rule.accepted if rule is not None else "", f.metadata.get("doc", "")))
    return out


def _backends(engine) -> str:
    return ", ".join(engine.backends)


def engines_table() -> str:
    """Markdown: one row per engine -- what it is, when to use it, its backends."""
    rows = ["| engine | what | when to use it | backends |", "|---|---|---|---|"]
    for name in ENGINES:
        e = get_engine(name)
        rows.append(f"| `{name}` | {e.summary().rstrip('.')} | {e.when_to_use} | {_backends(e)} |")
    return "\n".join(rows)


def options_table(name: str) -> str:
    """Markdown: the options of one engine with their defaults."""
    rows = ["| option | default | what | accepted |", "|---|---|---|---|"]
    for o in engine_options(name):
        rows.append(f"| `{o.name}` | `{o.default!r}` | {o.doc} | {o.accepted} |")
    return "\n".join(rows)


def options_markdown() -> str:
    """Every engine's options table under a heading of its own (the block docs/guide/fitting.md holds)."""
    parts = []
    for name in ENGINES:
        parts += [f"### `{name}`", "", get_engine(name).summary(), "", options_table(name), ""]
    return "\n".join(parts).rstrip() + "\n"


def describe(name: str | None = None) -> str:
    """Plain text for ``bnn-asym engines``: every engine with its summary, or one engine's options."""
    if name is None:
        width = max(map(len, ENGINES))
        lines = [f"{n:<{width}}  {get_engine(n).summary()}" for n in ENGINES]
        return "\n".join(lines + ["", "bnn-asym engines NAME lists an engine's options and their defaults"])
    e = get_engine(name)
    options = engine_options(name)
    width = max(len(o.name) for o in options)
    lines = [
        f"{name}: {e.summary()}",
        f"when to use it: {e.when_to_use}",
        f"backends: {_backends(e)}",
        "",
        "options (fit(..., name=value) or --option name=value):",
    ]
    for o in options:
        lines.append(f"  {o.name:<{width}}  default {o.default!r}: {o.doc} (accepted: {o.accepted})")
    return "\n".join(lines)


__all__ = ["OptionInfo", "describe", "engine_options", "engines_table", "options_markdown", "options_table"]
