"""The fast poll (`run --poll`): only the cheap listings, only their newest page, and the full
pipeline for what they show new; what it cannot see waits for the next run, never removed."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from conftest import DEMO_PAGE, OTHER_REGULATORS_OFF, page_path

from tracker.config import Config, load_config
from tracker.demo import (
    API,
    BRDR,
    DEMO_DOC_TYPES,
    DEMO_SITE,
    NEW_PRESS_RELEASES,
    day2_records,
    demo_config,
)
from tracker.demo_apis import BrdrFake, DocumentsFake, PressReleasesFake, load
from tracker.exit_codes import ExitStatus
from tracker.loopback import RecordedSite
from tracker.run import run
from tracker.sources import HKMA


@dataclass
class Fakes:
    site: RecordedSite  # feeds and the topic page
    brdr: BrdrFake
    press: PressReleasesFake
    config: Config

    def day2(self) -> None:
        """Day 2 of the demo: new feed items, an edited topic page, a new BRDR circular and
        SPM revision, three new press releases."""
        self.site.root = DEMO_SITE / "day2"
        day2_records(self.brdr.records)
        self.press.records = load("press-releases.json")
        self.site.reset_counters()
        self.brdr.bodies.clear()
        self.press.offsets.clear()


@contextmanager
def fakes(tmp_path: Path) -> Iterator[Fakes]:
    releases = load("press-releases.json")
    press = PressReleasesFake(releases[NEW_PRESS_RELEASES:])
    brdr = BrdrFake(load("brdr-records.json"))
    with (
        RecordedSite(DEMO_SITE / "day1") as site,
        RecordedSite(tmp_path) as register,
        RecordedSite(tmp_path) as api,
    ):
        site.fallback = register.fallback = DocumentsFake()
        register.handlers[BrdrFake.path] = brdr
        api.handlers[PressReleasesFake.path] = press
        path = tmp_path / "poll.toml"
        path.write_text(
            f"[crawl]\ndownload_delay = 0\nretries = 0\n{OTHER_REGULATORS_OFF}", encoding="utf-8"
        )
        mirrors = {HKMA: site.base_url, BRDR: register.base_url, API: api.base_url}
        yield Fakes(site, brdr, press, demo_config(load_config(path), tmp_path, mirrors))


def events(db_path: Path, run_id: int | None) -> list[tuple[str, str, str]]:
    with sqlite3.connect(db_path) as conn:
        return conn.execute(
            "SELECT source, kind, document_id FROM changes WHERE run_id = ? ORDER BY 1, 3",
            [run_id],
        ).fetchall()


def test_a_poll_reads_the_newest_page_of_cheap_listings_and_brings_what_is_new(tmp_path):
    db_path = tmp_path / "poll.db"
    with fakes(tmp_path) as f:
        assert run(f.config, db_path, full_sweep=True).exit_status == ExitStatus.OK
        f.day2()
        poll = run(f.config, db_path, poll=True)
        pages_read = list(f.site.paths)
        brdr_bodies = list(f.brdr.bodies)
        press_offsets = list(f.press.offsets)
        f.site.reset_counters()
        later = run(f.config, db_path)

    assert poll.exit_status == ExitStatus.OK
    assert [p.source for p in poll.plans] == ["rss", "brdr", "press_releases"]  # no pages
    assert page_path(DEMO_PAGE) not in pages_read
    # BRDR: page 1 of 20 of each document type, newest issue first; no second page.
    assert sorted(
        (b["docSrchCriteriaDtoList"][0]["valueList"][0], b["pageNumber"], b["pageSize"])
        for b in brdr_bodies
    ) == [(t, "1", "20") for t in sorted(DEMO_DOC_TYPES)]
    assert {b["sortBy"] for b in brdr_bodies} == {"ISSUE_DATE_DESCENDING"}
    assert press_offsets == [0]  # one page of the newest

    found = events(db_path, poll.run_id)
    assert ("brdr", "new", "brdr:doc:20261125-1") in found  # the superseding circular
    assert ("brdr", "changed", "brdr:spm:IC-6") in found  # the SPM module's revision
    releases = [kind for source, kind, _ in found if source == "press_releases"]
    assert releases == ["new"] * NEW_PRESS_RELEASES
    assert len([e for e in found if e[:2] == ("rss", "new")]) == 6  # the feeds' new items
    assert not [e for e in found if e[1] == "removed"]  # a slice removes nothing
    with sqlite3.connect(db_path) as conn:
        # The full pipeline ran for them: their documents were read and they are queued.
        (fetched,) = conn.execute(
            "SELECT fetch_status FROM documents WHERE id = 'brdr:doc:20261125-1'"
        ).fetchone()
        assert fetched == "ok"
        (command,) = conn.execute("SELECT command FROM runs WHERE id = ?", [poll.run_id]).fetchone()
        assert command == "poll"

    # The run after it reads the topic page and what the poll did not, and repeats nothing.
    assert page_path(DEMO_PAGE) in f.site.paths
    after = events(db_path, later.run_id)
    assert {e[0] for e in after} == {"pages"}, after
    assert not set(after) & set(found)


def test_a_poll_reads_no_listing_that_needs_a_full_read_first(tmp_path):
    """On a new database only the feeds (read whole anyway) are polled: a slice of BRDR or
    the press-release API taken as their baseline would make the next full read's older items
    look new."""
    db_path = tmp_path / "poll.db"
    with fakes(tmp_path) as f:
        poll = run(f.config, db_path, poll=True)
    assert poll.exit_status == ExitStatus.OK
    assert [p.source for p in poll.plans] == ["rss"]
    assert f.brdr.bodies == [] and f.press.offsets == []


@pytest.mark.parametrize("moment, minutes", [("2026-12-02T10:03", 10), ("2026-12-05T10:03", 60)])
def test_the_default_schedule_polls_every_ten_minutes_in_business_hours(moment, minutes):
    """Monday to Friday 08:00-20:30 Hong Kong time every 10 minutes, hourly otherwise."""
    from tracker.schedule import jobs_of

    (poll,) = [j for j in jobs_of(load_config(None)) if j.id == "poll:cheap"]
    assert poll.command == ("run", "--poll")
    start = datetime.fromisoformat(moment + "+08:00")
    first = poll.fire_after(start)
    assert first is not None and poll.fire_after(first) - first == timedelta(minutes=minutes)
    evening = datetime.fromisoformat("2026-12-02T20:25+08:00")  # a Wednesday
    assert [poll.fire_after(evening), poll.fire_after(poll.fire_after(evening))] == [
        datetime.fromisoformat("2026-12-02T20:30+08:00"),
        datetime.fromisoformat("2026-12-02T21:00+08:00"),
    ]


def test_a_poll_schedule_of_several_cron_expressions(tmp_path):
    from tracker.config import ConfigError
    from tracker.schedule import jobs_of

    path = tmp_path / "c.toml"
    path.write_text('[schedule]\nall = "15 * * * *"\npoll = ["*/5 9-17 * * *", "0 * * * *"]\n')
    (poll,) = [j for j in jobs_of(load_config(path)) if j.kind == "poll"]
    assert poll.cron == "*/5 9-17 * * * | 0 * * * *"
    day = datetime.fromisoformat("2026-12-02T00:00+08:00")
    # (00:00, 24:00]: hourly 01:00-08:00, every 5 minutes 09:00-17:55, hourly 18:00-24:00
    assert poll.count(day, day + timedelta(days=1)) == 8 + 9 * 12 + 7
    path.write_text('[schedule]\nall = "15 * * * *"\npoll = ["*/5 9-17 * * *", "often"]\n')
    with pytest.raises(ConfigError, match=r"schedule.poll: 'often' is not a cron expression"):
        load_config(path)


def test_a_poll_job_ends_before_the_next_is_due():
    from tracker.schedule import POLL_DEADLINE, job_deadline, jobs_of

    config = load_config(None)
    deadlines = {job.kind: job_deadline(config, job) for job in jobs_of(config)}
    assert deadlines == {"poll": POLL_DEADLINE, "crawl": 3600, "sweep": 3600}
    assert POLL_DEADLINE + 120 < 10 * 60  # with the grace the scheduler gives
