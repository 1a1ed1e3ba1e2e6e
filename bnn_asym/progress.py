"""Progress bars for long work; every caller passes ``enabled`` (the public ``progress=`` flag)."""

from __future__ import annotations

import sys

from tqdm import tqdm


def progress_bar(iterable=None, desc: str = "", enabled: bool = True, total: int | None = None, **kwargs):
    """A tqdm bar on stderr; with ``enabled=False`` it is silent but keeps the same interface."""
    return tqdm(
        iterable,
        desc=desc,
        total=total,
        disable=not enabled,
        file=sys.stderr,
        dynamic_ncols=True,
        leave=False,
        **kwargs,
    )
