"""Crawls on scrapyd (issue 26): a real scrapyd node started on 127.0.0.1 by the test, without
eggs (in a folder whose scrapy.cfg names the project's settings), against the loopback fake
of the HKMA press-release API (260 records derived from real ones)."""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tracker.config import load_config
from tracker.demo_apis import PressReleasesFake, load
from tracker.exit_codes import ExitStatus
from tracker.loopback import RecordedSite
from tracker.run import run


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    """A scrapyd node as README's "Scaling out" starts one: in a folder with a scrapy.cfg."""
    folder = tmp_path_factory.mktemp("scrapyd")
    port = free_port()
    (folder / "scrapy.cfg").write_text(
        "[settings]\ndefault = spiders.settings\n\n[scrapyd]\n"
        f"bind_address = 127.0.0.1\nhttp_port = {port}\n"
        f"items_dir = {folder / 'items'}\nlogs_dir = {folder / 'logs'}\n"
        f"dbs_dir = {folder / 'dbs'}\neggs_dir = {folder / 'eggs'}\n"
        "poll_interval = 0.2\njobs_to_keep = 5\n"
        "jobstorage = scrapyd.jobstorage.SqliteJobStorage\n",
        encoding="utf-8",
    )
    with (folder / "scrapyd.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "scrapyd"], cwd=folder, stdout=log, stderr=log
        )
        url = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{url}/daemonstatus.json", timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)
        else:
            process.kill()
            pytest.fail(f"scrapyd did not start: {(folder / 'scrapyd.log').read_text()[-2000:]}")
        yield url
        process.terminate()
        process.wait(10)


@pytest.fixture
def fake():
    return PressReleasesFake(load("press-releases.json"))


@pytest.fixture
def site(tmp_path, fake):
    with RecordedSite(tmp_path) as served:
        served.handlers[PressReleasesFake.path] = fake
        yield served


def config_for(tmp_path: Path, site, engine: str, node_url: str = ""):
    path = tmp_path / f"{engine}.toml"
    path.write_text(
        f'[crawl]\ndownload_delay = 0\nretries = 0\nengine = "{engine}"\n'
        f'[scrapyd]\nurls = ["{node_url or "http://127.0.0.1:9"}"]\npoll_interval = 0.2\n'
        "[sources.rss]\nenabled = false\n[sources.pages]\nenabled = false\n"
        "[sources.brdr]\nenabled = false\n[documents]\nenabled = false\n"
        f'[digest]\nfolder = "{(tmp_path / f"digests-{engine}").as_posix()}"\n',
        encoding="utf-8",
    )
    return load_config(path, [f"https://api.hkma.gov.hk={site.base_url}"])


def events(db_path):
    with sqlite3.connect(db_path) as conn:
        return sorted(
            conn.execute("SELECT document_id, kind, baseline, title FROM changes").fetchall()
        )


NEW = {
    "title": "Exchange Fund Position at end-July 2026",
    "link": "https://www.hkma.gov.hk/eng/news-and-media/press-releases/2026/08/20260807-3/",
    "date": "2026-08-07",
}


def test_both_engines_give_the_same_events(tmp_path, site, fake, node):
    local, remote = tmp_path / "local.db", tmp_path / "remote.db"
    on_local = config_for(tmp_path, site, "local")
    on_scrapyd = config_for(tmp_path, site, "scrapyd", node)
    for config, db in ((on_local, local), (on_scrapyd, remote)):
        report = run(config, db)
        assert report.exit_status == ExitStatus.OK, [p.reason for p in report.plans]
    fake.records.insert(0, dict(NEW))
    fake.records[5] = {**fake.records[5], "title": fake.records[5]["title"] + " (revised)"}
    for config, db in ((on_local, local), (on_scrapyd, remote)):
        report = run(config, db, full_sweep=True)
        assert report.exit_status == ExitStatus.OK, [p.reason for p in report.plans]
    assert events(remote) == events(local)
    news = [(doc, kind) for doc, kind, baseline, _ in events(remote) if not baseline]
    assert len(news) == 2 and {kind for _, kind in news} == {"new", "changed"}
    with sqlite3.connect(remote) as conn:  # the crawl's own figures came back with the job
        stats, finish = conn.execute(
            "SELECT stats, finish_reason FROM source_runs ORDER BY run_id DESC LIMIT 1"
        ).fetchone()
    assert finish == "finished" and '"downloader/request_count"' in stats


def test_a_node_that_refuses_is_an_unhealthy_run_and_the_next_run_recovers(tmp_path, site, node):
    db = tmp_path / "h.db"
    assert run(config_for(tmp_path, site, "scrapyd", node), db).exit_status == ExitStatus.OK
    with sqlite3.connect(db) as conn:
        stored = conn.execute("SELECT id, status FROM documents ORDER BY id").fetchall()
    down = config_for(tmp_path, site, "scrapyd", f"http://127.0.0.1:{free_port()}")
    report = run(down, db, full_sweep=True)
    assert report.exit_status == ExitStatus.SOURCE_UNHEALTHY
    assert "unreachable" in report.plans[0].reason
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT id, status FROM documents ORDER BY id").fetchall() == stored
    again = run(config_for(tmp_path, site, "scrapyd", node), db, full_sweep=True)
    assert again.exit_status == ExitStatus.OK
