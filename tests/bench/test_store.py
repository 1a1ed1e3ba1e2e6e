"""The SQLite results store: resumable jobs, and clear errors for files it cannot use."""

import sqlite3

import pytest

from bnn_asym.bench.store import ResultsStore, StoreError
from bnn_asym.cli import main


def test_put_get_all_and_cached(tmp_path):
    store = ResultsStore(tmp_path / "s.sqlite")
    calls = []
    result, cached = store.cached({"kind": "k", "a": 1}, lambda: calls.append(1) or {"x": 2})
    assert (result, cached) == ({"x": 2}, False)
    assert store.cached({"kind": "k", "a": 1}, lambda: calls.append(1) or {"x": 3}) == ({"x": 2}, True)
    assert calls == [1] and store.all("k") == [({"kind": "k", "a": 1}, {"x": 2})]


@pytest.mark.parametrize("content", [b"not a database at all" * 100, b""], ids=["garbage", "empty"])
def test_a_corrupt_store_is_a_clear_error(tmp_path, content):
    path = tmp_path / "s.sqlite"
    path.write_bytes(content)
    if content:
        with pytest.raises(StoreError, match=r"s.sqlite cannot be read .* not a bnn_asym results store"):
            ResultsStore(path)
    else:
        ResultsStore(path)  # an empty file is a valid, empty SQLite database


def test_a_foreign_database_is_refused(tmp_path):
    path = tmp_path / "other.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE jobs (id INTEGER, name TEXT)")
    with pytest.raises(StoreError, match="did not write"):
        ResultsStore(path)


@pytest.mark.parametrize("command", ["lmc", "mli", "bench"])
def test_cli_reports_a_corrupt_store_without_traceback(tmp_path, capsys, command):
    path = tmp_path / "bad.sqlite"
    path.write_bytes(b"\x00garbage" * 500)
    args = [command] + (["quick"] if command == "bench" else []) + ["--store", str(path), "--no-progress"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"bnn-asym {command}: error: results store {path}" in err and "Traceback" not in err
