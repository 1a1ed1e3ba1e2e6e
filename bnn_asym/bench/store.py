"""A small SQLite store of finished jobs, so that rerunning an experiment skips what is done.

A job is identified by its configuration (a JSON-able dict); its key is the sha256 of the canonical
JSON. Each result is written in one transaction: an interrupted run leaves only complete jobs behind.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from pathlib import Path


def job_key(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:32]


class ResultsStore:
    def __init__(self, path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS jobs (key TEXT PRIMARY KEY, kind TEXT NOT NULL, config TEXT NOT NULL, "
                "result TEXT NOT NULL, seconds REAL, created REAL)"
            )

    def _connect(self):
        return sqlite3.connect(self.path, timeout=60)

    def get(self, config: dict) -> dict | None:
        with self._connect() as db:
            row = db.execute("SELECT result FROM jobs WHERE key = ?", (job_key(config),)).fetchone()
        return None if row is None else json.loads(row[0])

    def put(self, config: dict, result: dict, seconds: float | None = None) -> None:
        with self._connect() as db:
            db.execute(
                "INSERT OR REPLACE INTO jobs VALUES (?, ?, ?, ?, ?, ?)",
                (job_key(config), config.get("kind", ""), json.dumps(config, sort_keys=True), json.dumps(result),
                 seconds, time.time()),
            )

    def all(self, kind: str | None = None) -> list[tuple[dict, dict]]:
        with self._connect() as db:
            q = "SELECT config, result FROM jobs" + (" WHERE kind = ?" if kind else "") + " ORDER BY created"
            rows = db.execute(q, (kind,) if kind else ()).fetchall()
        return [(json.loads(c), json.loads(r)) for c, r in rows]

    def cached(self, config: dict, compute) -> tuple[dict, bool]:
        """The stored result for ``config``, or ``compute()`` stored now; also says whether it was cached."""
        found = self.get(config)
        if found is not None:
            return found, True
        start = time.perf_counter()
        result = compute()
        self.put(config, result, time.perf_counter() - start)
        return result, False
