"""Process hygiene on real processes: helpers never keep the run lock, die with the run that
started them, and a run killed with SIGKILL in the middle of reading a PDF blocks nothing."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import DEMO_PAGE, OTHER_REGULATORS_OFF, page_path

from tracker.demo import DEMO_SITE
from tracker.demo_apis import CIRCULAR, make_pdf
from tracker.lock import run_lock
from tracker.loopback import RecordedSite

PDF = "media/eng/doc/key-information/guidelines-and-circular/2024/20241220e1.pdf"


def stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name: state, ppid, pgrp, session, ..."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw.rsplit(")", 1)[1].split()


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:  # gone meanwhile
        return b""


def alive(pid: int) -> bool:
    fields = stat(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := stat(int(entry.name))) and fields[1] == str(pid):
            found.append(int(entry.name))
    return found


def wait_for(condition, seconds: float, step: float = 0.1):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if result := condition():
            return result
        time.sleep(step)
    return None


def _sleep_once_started(started) -> None:
    started.set()
    time.sleep(30)


def test_a_forked_child_does_not_keep_the_run_lock(tmp_path):
    db = tmp_path / "h.db"
    context = multiprocessing.get_context("fork")
    started = context.Event()
    with run_lock(db):
        child = context.Process(target=_sleep_once_started, args=(started,), daemon=True)
        child.start()
        assert started.wait(10)
    try:
        with run_lock(db):  # RunLocked while the child still held a copy of the lock
            pass
    finally:
        child.kill()
        child.join()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_run_killed_while_reading_a_pdf_leaves_nothing_behind(tmp_path):
    root = tmp_path / "site"
    page = root / page_path().lstrip("/") / "index.html"
    page.parent.mkdir(parents=True)
    html = (DEMO_SITE / "day1" / page_path().lstrip("/") / "index.html").read_text(encoding="utf-8")
    page.write_text(html, encoding="utf-8")
    (root / PDF).parent.mkdir(parents=True)
    (root / PDF).write_bytes(make_pdf(CIRCULAR * 500, pages=600))  # about a minute to read
    config = tmp_path / "c.toml"
    config.write_text(
        "[crawl]\ndownload_delay = 0\nretries = 0\n"
        "[sources.rss]\nenabled = false\n[sources.brdr]\nenabled = false\n"
        "[sources.press_releases]\nenabled = false\n"
        f"{OTHER_REGULATORS_OFF}"
        f'[sources.pages]\nurls = ["{DEMO_PAGE}"]\n'
        "[documents]\npdf_timeout = 600\n"
        f'[digest]\nfolder = "{(tmp_path / "digests").as_posix()}"\n',
        encoding="utf-8",
    )
    db = tmp_path / "h.db"
    with RecordedSite(root) as site:
        command = [
            *(sys.executable, "-m", "tracker", "--config", str(config), "--db", str(db)),
            *("run", "--mirror", f"https://www.hkma.gov.hk={site.base_url}"),
        ]
        # A temporary folder of its own: no other tracker process may tidy it meanwhile.
        temp = tmp_path / "tmp"
        temp.mkdir()
        env = {**os.environ, "TMPDIR": str(temp)}
        first = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
        )
        own = b"".join(arg.encode() + b"\0" for arg in command)  # as /proc shows it

        def reading():  # once the PDF is downloaded, a forked child of the run (same command)
            if f"/{PDF}" not in site.paths:
                return []
            return [c for c in children(first.pid) if cmdline(c) == own]

        try:
            extraction = wait_for(reading, 90)
            assert extraction, "the run never started reading the PDF"
            time.sleep(1)  # not a child between its fork and exec: one that stays
            assert extraction == reading(), "the PDF reader did not stay"
        finally:
            os.kill(first.pid, signal.SIGKILL)
            first.wait()

        assert wait_for(lambda: not alive(extraction[0]), 5), "the PDF reader outlived its run"
        left = list(temp.glob(f"hkma-tracker-{first.pid}-*"))
        assert left  # the killed run's folder, with the PDF it downloaded
        started = time.monotonic()
        second = subprocess.run(
            [*command, "--deadline", "5"], capture_output=True, text=True, timeout=120, env=env
        )
        assert second.returncode != 75, second.stderr
        assert time.monotonic() - started < 40
    assert not any(folder.exists() for folder in left)
    with sqlite3.connect(db) as conn:
        killed = conn.execute("SELECT status, unfinished FROM runs ORDER BY id").fetchone()
    assert killed == ("failed", "interrupted: its process ended before the run finished")


def test_a_database_kept_busy_is_a_one_line_try_later(tmp_path, monkeypatch, capsys):
    from storage import db as storage_db
    from tracker import cli

    path = tmp_path / "h.db"
    storage_db.open_db(path).close()
    monkeypatch.setattr(storage_db, "BUSY_TIMEOUT_MS", 300)
    monkeypatch.setattr(cli, "BUSY_TIMEOUT_MS", 300)
    holder = sqlite3.connect(path)
    holder.execute("BEGIN IMMEDIATE")  # another writer that does not let go
    try:
        monkeypatch.setattr(sys, "argv", ["hkma-tracker", "--db", str(path), "digest", "--send"])
        with pytest.raises(SystemExit) as done:
            cli.main()
    finally:
        holder.rollback()
        holder.close()
    assert done.value.code == 75
    err = capsys.readouterr().err
    assert err.startswith("hkma-tracker: the database is busy") and err.count("\n") == 1
