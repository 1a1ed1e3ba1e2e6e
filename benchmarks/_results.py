"""How every benchmark script ends: its record and its table committed side by side under ``results/``."""

from __future__ import annotations

import json
from pathlib import Path

from bnn_asym.io import atomic_write_text

RESULTS = Path(__file__).parent / "results"


def write_results(name: str, record: dict, markdown: str) -> None:
    """Write ``results/{name}.json`` (the record) and ``results/{name}.md`` (its table), each atomically -- an
    interrupted run leaves the committed pair as it was -- and print the table."""
    RESULTS.mkdir(exist_ok=True)
    atomic_write_text(RESULTS / f"{name}.json", json.dumps(record, indent=1))
    atomic_write_text(RESULTS / f"{name}.md", markdown)
    print(markdown)
