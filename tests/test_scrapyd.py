"""Crawls on scrapyd (issue 26): a real scrapyd node started on 127.0.0.1 by the test, without
eggs (in a folder whose scrapy.cfg names the project's settings), against the loopback fake
of the HKMA press-release API (260 records derived from real ones)."""

from __future__ import annotations

import dataclasses
import json
import socket
import sqlite3
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import OTHER_REGULATORS_OFF

from spiders.settings import settings_for
from storage.db import open_db
from tracker import scrapyd as scrapyd_engine
from tracker.config import load_config
from tracker.demo import DEMO_SITE
from tracker.demo_apis import DocumentsFake, PressReleasesFake, load
from tracker.exit_codes import ExitStatus
from tracker.loopback import RecordedSite
from tracker.run import run
from tracker.scrapyd import crawl_on_scrapyd, local_node
from tracker.status import status_report


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    with local_node(tmp_path_factory.mktemp("scrapyd")) as url:
        yield url


@pytest.fixture(scope="module")
def one_slot_node(tmp_path_factory):
    """A node that runs one job at a time and keeps one job's files."""
    with local_node(tmp_path_factory.mktemp("scrapyd1"), max_proc=1, jobs_to_keep=1) as url:
        yield url


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
        f"{OTHER_REGULATORS_OFF}"
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


# The press-release crawl as `crawl_on_scrapyd` takes it (tests that call it directly).
PRESS_CRAWL = {
    "spider": "spiders.press_releases:PressReleasesSpider",
    "listings": {"press-releases": "https://api.hkma.gov.hk/public/press-releases?lang=en"},
    "options": {"page_size": 100},
}


def answer_slowly(site, fake, seconds: float) -> None:
    """The fake answers each page after `seconds`: a job that runs that long."""

    def slow(request):
        answer = fake(request)
        answer.delay = seconds
        return answer

    site.handlers[PressReleasesFake.path] = slow


def test_jobs_running_or_pending_too_long_are_cancelled_and_unhealthy(
    tmp_path, site, fake, one_slot_node
):
    """One slot: the first job holds it on a listing that answers in 20 s, past its job
    timeout (cancelled with KILL); the second waits, past its pending timeout."""

    answer_slowly(site, fake, 20)
    config = config_for(tmp_path, site, "scrapyd", one_slot_node)
    config = dataclasses.replace(
        config,
        scrapyd=dataclasses.replace(config.scrapyd, job_timeout=3, pending_timeout=2),
    )
    started = time.monotonic()
    settings = settings_for(dataclasses.asdict(config.crawl), config.mirrors)
    jobs = {"first": PRESS_CRAWL, "second": PRESS_CRAWL}
    results = crawl_on_scrapyd(config, jobs, settings, tmp_path, "slow", None)
    assert time.monotonic() - started < 15
    assert "cancelled after 3 s" in results["first"]["finish_reason"]
    assert "still pending after 2 s" in results["second"]["finish_reason"]


def test_each_run_reads_its_own_jobs_before_they_rotate_away(tmp_path, site, one_slot_node):
    """jobs_to_keep = 1: a job's files are gone once the next job of its spider finishes;
    each run has read its own by then, under an id that names the run."""
    db = tmp_path / "h.db"
    config = config_for(tmp_path, site, "scrapyd", one_slot_node)
    for _ in range(3):
        assert run(config, db, full_sweep=True).exit_status == ExitStatus.OK
    with sqlite3.connect(db) as conn:
        runs = [r[0] for r in conn.execute("SELECT id FROM runs ORDER BY id")]
        requests = conn.execute("SELECT count(*) FROM source_runs WHERE requests > 0").fetchone()
    assert requests == (3,)
    listed = json.loads(
        urllib.request.urlopen(f"{one_slot_node}/listjobs.json?project=default").read()
    )
    finished = {job["id"] for job in listed["finished"]}
    for n in runs:  # each run's own job, named by the run
        assert any(j.startswith(f"run{n}-") and j.endswith("-press_releases") for j in finished)


def test_status_names_the_engine_and_what_each_node_answers(tmp_path, site, node):
    config = config_for(tmp_path, site, "scrapyd", node)
    refused = f"http://127.0.0.1:{free_port()}"
    config = dataclasses.replace(
        config, scrapyd=dataclasses.replace(config.scrapyd, urls=(node, refused))
    )
    db = tmp_path / "h.db"
    run(config, db)
    with open_db(db) as conn:
        report = status_report(conn, config)
    assert report["engine"] == "scrapyd"
    up, down = report["nodes"]
    assert up["ok"] and set(up["answer"]) == {"pending", "running", "finished"}
    assert not down["ok"] and "unreachable" in down["answer"]


def test_a_job_killed_mid_crawl_is_unhealthy(tmp_path, site, fake, node):
    """Someone cancels the job with KILL while it crawls: it finishes without its result."""

    answer_slowly(site, fake, 10)
    config = config_for(tmp_path, site, "scrapyd", node)
    settings = settings_for(dataclasses.asdict(config.crawl), config.mirrors)
    outcome: dict = {}
    crawling = threading.Thread(
        target=lambda: outcome.update(
            crawl_on_scrapyd(config, {"press": PRESS_CRAWL}, settings, tmp_path, "killed", None)
        )
    )
    crawling.start()
    for _ in range(100):
        state = json.loads(urllib.request.urlopen(f"{node}/status.json?job=killed-press").read())
        if state["currstate"] == "running":
            break
        time.sleep(0.1)
    data = b"project=default&job=killed-press&signal=KILL"
    urllib.request.urlopen(f"{node}/cancel.json", data=data).read()
    crawling.join(30)
    assert "finished" in outcome["press"]["finish_reason"]
    assert "without its result" in outcome["press"]["finish_reason"]


def test_linked_documents_fetched_on_scrapyd_are_read_here(tmp_path, node, monkeypatch):
    """The RSS items' PDFs fetched by documents jobs on the node (in parts of 2 KiB here: a
    job's arguments are one command-line argument, capped at 128 KiB), brought back and read
    by this host's PDF readers: the same texts as the local engine reads."""
    monkeypatch.setattr(scrapyd_engine, "PART_BYTES", 2048)
    texts = {}
    with RecordedSite(DEMO_SITE / "day1") as demo:
        demo.fallback = DocumentsFake()
        for engine in ("local", "scrapyd"):
            path = tmp_path / f"docs-{engine}.toml"
            path.write_text(
                f'[crawl]\ndownload_delay = 0\nretries = 0\nengine = "{engine}"\n'
                f'[scrapyd]\nurls = ["{node}"]\npoll_interval = 0.2\n'
                "[sources.pages]\nenabled = false\n[sources.brdr]\nenabled = false\n"
                "[sources.press_releases]\nenabled = false\n"
                f"{OTHER_REGULATORS_OFF}"
                f'[digest]\nfolder = "{(tmp_path / engine).as_posix()}"\n',
                encoding="utf-8",
            )
            config = load_config(path, [f"https://www.hkma.gov.hk={demo.base_url}"])
            db = tmp_path / f"{engine}.db"
            assert run(config, db).exit_status == ExitStatus.OK
            with sqlite3.connect(db) as conn:
                texts[engine] = sorted(
                    conn.execute(
                        "SELECT id, fetch_status, json_extract(document_content, '$.text') "
                        "FROM documents_full"
                    ).fetchall()
                )
    assert texts["scrapyd"] == texts["local"]
    listed = json.loads(urllib.request.urlopen(f"{node}/listjobs.json?project=default").read())
    parts = [job for job in listed["finished"] if job["spider"] == "documents"]
    assert len(parts) >= 3
    read = [row for row in texts["scrapyd"] if row[1] == "ok" and row[2]]
    assert len(read) >= 20  # the feeds' PDFs and pages, each with a text of its own
