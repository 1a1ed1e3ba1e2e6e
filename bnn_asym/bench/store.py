"""A small SQLite store of finished jobs, so that rerunning an experiment skips what is done.

A job is identified by its configuration (a JSON-able dict); its key is the sha256 of the canonical
JSON. Each result is written in one transaction: an interrupted run leaves only complete jobs behind.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path


def job_key(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:32]


class StoreError(ValueError):
    """The store file cannot be used (not SQLite, corrupt, or another program's database)."""


class ResultsStore:
    def __init__(self, path):
        self.path = Path(path)
        if self.path.is_dir():
            raise StoreError(f"results store {self.path} is a directory; accepted: a SQLite file path")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS jobs (key TEXT PRIMARY KEY, kind TEXT NOT NULL, config TEXT NOT NULL, "
                "result TEXT NOT NULL, seconds REAL, created REAL)"
            )
            columns = [row[1] for row in db.execute("PRAGMA table_info(jobs)")]
        if columns[:4] != ["key", "kind", "config", "result"]:
            raise StoreError(f"results store {self.path} has a 'jobs' table that bnn_asym did not write; "
                             "pass another store path")

    @contextmanager
    def _connect(self):
        """A connection whose SQLite errors name this store; commits on success."""
        try:
            db = sqlite3.connect(self.path, timeout=60)
            try:
                with db:
                    yield db
            finally:
                db.close()
        except sqlite3.DatabaseError as e:
            raise StoreError(f"results store {self.path} cannot be read ({e}); it is not a bnn_asym results store "
                             "or it is damaged: move it away or pass another store path") from e

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
