"""One run over loopback fakes of every source at once: every document recorded with its text."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime

from conftest import DEMO_PAGE, OTHER_REGULATORS_OFF

from spiders.normalize import HONG_KONG
from tracker.config import load_config
from tracker.demo import IA, SFC_HOSTS
from tracker.demo_apis import BrdrFake, DocumentsFake, PressReleasesFake, load
from tracker.demo_ia import IaFake
from tracker.demo_sfc import SfcFake, years_to_read
from tracker.exit_codes import ExitStatus
from tracker.loopback import RecordedSite
from tracker.run import run


def test_every_source_and_every_linked_document(site, tmp_path, db_path):
    site.fallback = DocumentsFake()
    press = PressReleasesFake(load("press-releases.json"))
    this_year = datetime.now(HONG_KONG).year
    sfc, ia = SfcFake(), IaFake.for_year(this_year)
    with (
        RecordedSite(tmp_path) as brdr,
        RecordedSite(tmp_path) as api,
        RecordedSite(tmp_path) as sfc_site,
        RecordedSite(tmp_path) as ia_site,
    ):
        brdr.handlers[BrdrFake.path] = BrdrFake(load("brdr-records.json"))
        brdr.fallback = DocumentsFake()
        api.handlers[PressReleasesFake.path] = press
        sfc_site.handlers.update(sfc.routes())
        sfc_site.fallback = sfc.fallback
        ia_site.handlers.update(ia.routes([this_year, this_year - 1]))
        ia_site.fallback = ia.fallback
        path = tmp_path / "all.toml"
        path.write_text(
            "[crawl]\ndownload_delay = 0\nretries = 0\n"
            f'[sources.pages]\nurls = ["{DEMO_PAGE}"]\n'
            "[documents]\nmax_per_run = 1000\n"
            f"[sources.sfc]\nyears = {years_to_read(this_year)}\n"
            f'[digest]\nfolder = "{(tmp_path / "digests").as_posix()}"\n',
            encoding="utf-8",
        )
        mirrors = [
            f"https://www.hkma.gov.hk={site.base_url}",
            f"https://brdr.hkma.gov.hk={brdr.base_url}",
            f"https://api.hkma.gov.hk={api.base_url}",
            *(f"{host}={sfc_site.base_url}" for host in SFC_HOSTS),
            f"{IA}={ia_site.base_url}",
        ]
        report = run(load_config(path, mirrors), db_path, full_sweep=True)

    assert report.exit_status == ExitStatus.OK
    assert {p.source: (p.healthy, len(p.seen)) for p in report.plans} == {
        "rss": (True, 49),
        "pages": (True, 84),
        "brdr": (True, 117),
        "press_releases": (True, 260),
        "sfc": (True, 11),
        "ia": (True, 9),
    }
    with sqlite3.connect(db_path) as conn:
        rows = conn.execute(
            "SELECT id, url, fetch_status, fetch_reason, document_content FROM documents_full "
            "WHERE json_extract(extra, '$.document_url') IS NOT NULL AND regulator = 'HKMA'"
        ).fetchall()
        others = conn.execute(
            "SELECT id, regulator, fetch_status, document_content ->> '$.text' FROM documents_full "
            "WHERE json_extract(extra, '$.document_url') IS NOT NULL AND regulator != 'HKMA'"
        ).fetchall()
    assert len(rows) == 47 + 83 + 117 + 260  # LegCo items and the page itself link nothing
    # Real items that link www.info.gov.hk (press release, and its RSS twin) are not followed:
    # recorded once as not fetchable, not retried every run.
    refused = [r for r in rows if r[2] != "ok"]
    assert refused and all(url.startswith("https://www.info.gov.hk/") for _, url, *_ in refused)
    assert all(
        r[2:4] == ("not-fetchable", "not fetchable: www.info.gov.hk is not a regulator's host")
        for r in refused
    )
    for doc, _, status, _, content in rows:
        if status == "ok":
            fields = json.loads(content)
            assert fields["text"], doc
            assert fields["references"] == ["B1/15C", "B9/29C"], doc
            assert fields["effective_dates"][0]["date"] == "2026-03-01", doc
    # The SFC's and the IA's documents are read from their own hosts, each text its own.
    assert {r[1] for r in others} == {"SFC", "IA"}
    assert all(status == "ok" and text for _, _, status, text in others), others
    assert len({text for *_, text in others}) == len(others)
    assert report.documents.counts == {
        "fetched": len(rows) - len(refused) + len(others),
        "not fetchable": len(refused),
    }


def test_texts_read_in_later_runs_are_linked_as_retag_would_link_them(tmp_path, db_path):
    from storage.db import open_db, write_transaction
    from storage.links import rebuild_links
    from tracker.rule_records import links_for

    with RecordedSite(tmp_path) as brdr:
        brdr.handlers[BrdrFake.path] = BrdrFake(load("brdr-records.json"))
        brdr.fallback = DocumentsFake()
        path = tmp_path / "brdr.toml"
        path.write_text(
            "[crawl]\ndownload_delay = 0\nretries = 0\n"
            "[sources.rss]\nenabled = false\n[sources.pages]\nenabled = false\n"
            "[sources.press_releases]\nenabled = false\n"
            f"{OTHER_REGULATORS_OFF}"
            "[documents]\nmax_per_run = 40\n"  # 117 records: texts come over three runs
            f'[digest]\nfolder = "{(tmp_path / "digests").as_posix()}"\n',
            encoding="utf-8",
        )
        config = load_config(path, [f"https://brdr.hkma.gov.hk={brdr.base_url}"])
        for _ in range(4):
            run(config, db_path, full_sweep=True)
        # A run killed before its end had stored texts but not their links: the next run
        # (which closes it) links what it left.
        with sqlite3.connect(db_path) as conn:
            last = conn.execute("SELECT max(run_id) FROM versions").fetchone()[0]
            conn.execute(
                "DELETE FROM links WHERE document_id IN "
                "(SELECT document_id FROM versions WHERE run_id = ?)",
                [last],
            )
            conn.execute("UPDATE runs SET status = 'running' WHERE id = ?", [last])
        run(config, db_path)

    def links():
        with sqlite3.connect(db_path) as conn:
            return sorted(conn.execute("SELECT document_id, key, kind FROM links").fetchall())

    with sqlite3.connect(db_path) as conn:
        unread = conn.execute("SELECT count(*) FROM documents WHERE fetch_status IS NULL")
        assert unread.fetchone()[0] == 0  # every text was read, most of them after run one
    after_runs = links()
    assert sum(1 for _, key, _ in after_runs if key == "ref:B1/15C") == 117
    db = open_db(db_path)
    with write_transaction(db):
        rebuild_links(db, links_for(db))  # as `retag` does
    db.close()
    assert links() == after_runs
