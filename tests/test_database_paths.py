"""A database path that cannot be used is one line naming it and exit 2, never a traceback,
and only the commands meant to create a database create one."""

from __future__ import annotations

import sqlite3

import pytest
from click.testing import CliRunner

from storage.db import open_db
from tracker.cli import cli

READERS = [
    ["status"],
    ["changes"],
    ["export"],
    ["runs"],
    ["search", "money"],
    ["history", "x"],
    ["diff", "x"],
    ["outbox"],
    ["rule", "IC-6"],
    ["datasette"],
]
WRITERS = [["digest", "--dry-run"], ["alerts", "check"], ["retag"]]
CREATORS = [["run", "--source", "rss"], ["crawl", "--source", "rss"]]


def bad_path(kind, tmp_path):
    path = tmp_path / "h.db"
    if kind == "missing folder":
        return tmp_path / "no-such-folder" / "h.db"
    if kind == "empty file":
        path.write_bytes(b"")
    elif kind == "text file":
        path.write_text("not a database\n", encoding="utf-8")
    elif kind == "unrelated SQLite file":
        with sqlite3.connect(path) as conn:
            conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    elif kind == "newer schema":
        open_db(path).close()
        with sqlite3.connect(path) as conn:
            conn.execute(
                "INSERT INTO _sqlite_migrations (migration_set, name, applied_at) "
                "VALUES ('hkma-tracker', 'm999_from_the_future', '2030-01-01')"
            )
    elif kind == "folder":
        path.mkdir()
    return path


KINDS = ["missing folder", "empty file", "text file", "unrelated SQLite file", "newer schema"]


@pytest.mark.parametrize("kind", [*KINDS, "folder"])
@pytest.mark.parametrize("command", READERS + WRITERS + CREATORS, ids=lambda c: c[0])
def test_a_bad_database_path_is_one_line_and_exit_2(kind, command, tmp_path):
    if kind == "empty file" and command in CREATORS:
        pytest.skip("an empty file is an empty SQLite database: run makes it the tracker's")
    path = bad_path(kind, tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    result = CliRunner().invoke(cli, ["--db", str(path), *command])
    assert result.exit_code == 2, (result.output, result.exception)
    assert result.stdout == ""
    line = result.stderr.strip().splitlines()[-1]  # (click's usage line comes first for a folder)
    if kind != "folder":
        assert len(result.stderr.strip().splitlines()) == 1
    assert str(path) in line and "Traceback" not in result.stderr
    if kind != "missing folder":
        assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing created
    assert {
        "missing folder": "does not exist",
        "empty file": "an empty file",
        "text file": "not a SQLite database",
        "unrelated SQLite file": "not an hkma-tracker one",
        "newer schema": "written by a newer hkma-tracker",
        "folder": "is a directory",
    }[kind] in line


@pytest.mark.parametrize("command", READERS + WRITERS, ids=lambda c: c[0])
def test_only_run_crawl_and_demo_create_the_database(command, tmp_path):
    path = tmp_path / "h.db"
    result = CliRunner().invoke(cli, ["--db", str(path), *command])
    assert result.exit_code == 2 and "does not exist (`hkma-tracker run` creates it)" in (
        result.stderr
    )
    assert list(tmp_path.iterdir()) == []
