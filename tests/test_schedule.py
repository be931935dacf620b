"""Unattended operation: the scheduler's jobs, hard deadlines, the run lock, catch-up after
downtime, and health alerts for a redesigned page."""

from __future__ import annotations

import dataclasses
import json
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta, timezone

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from click.testing import CliRunner
from conftest import DEMO_PAGE, WWW_ONLY, page_path

from tracker import schedule
from tracker.cli import cli
from tracker.config import load_config
from tracker.exit_codes import ExitStatus
from tracker.loopback import Override
from tracker.run import run
from tracker.status import _overdue

SCHEDULE = """
[schedule]
rss = "30 8-18 * * mon-fri"
pages = "0 */3 * * *"
full_sweep = "0 2 * * sun"

[[subscribers]]
name = "aml-team"
emails = ["aml@example.com"]
functions = ["AML/CFT"]
cadence = "daily 08:30"

[[subscribers]]
name = "weekly"
emails = ["w@example.com"]
cadence = "weekly mon 09:00"
"""


def test_jobs_come_from_the_config(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text(SCHEDULE, encoding="utf-8")
    result = CliRunner().invoke(cli, ["--config", str(config), "schedule", "--print", "--json"])
    assert result.exit_code == 0, result.output
    jobs = {j["id"]: j for j in map(json.loads, result.stdout.splitlines())}
    assert list(jobs) == [
        "crawl:rss",
        "crawl:pages",
        "sweep:full",
        "digest:aml-team",
        "digest:weekly",
        "check:dead-man",
    ]
    assert (
        jobs["crawl:rss"]["kind"] == "crawl"
        and jobs["crawl:rss"]["trigger"] == "cron[30 8-18 * * mon-fri] Asia/Hong_Kong"
    )
    assert jobs["sweep:full"]["command"] == "run --full-sweep"
    assert jobs["digest:aml-team"]["trigger"] == "cron[30 8 * * *] Asia/Hong_Kong"
    assert jobs["digest:weekly"]["trigger"] == "cron[0 9 * * mon] Asia/Hong_Kong"
    next_rss = datetime.fromisoformat(jobs["crawl:rss"]["next_run"])
    assert next_rss.utcoffset() == timedelta(hours=8) and next_rss.minute == 30
    assert next_rss.weekday() < 5 and 8 <= next_rss.hour <= 18


def test_default_schedule_and_bad_entries(tmp_path):
    jobs = schedule.jobs_of(load_config(None))
    assert [j.id for j in jobs] == ["poll:cheap", "crawl:all", "sweep:full"]
    sweep = jobs[2].trigger
    first = sweep.get_next_fire_time(None, datetime(2026, 11, 28, 12, tzinfo=UTC))
    second = sweep.get_next_fire_time(first, first + timedelta(seconds=1))
    assert (first.hour, first.minute, second - first) == (2, 0, timedelta(days=1))  # daily, HK
    bad = tmp_path / "c.toml"
    bad.write_text('[schedule]\nrss = "every hour"\n', encoding="utf-8")
    result = CliRunner().invoke(cli, ["--config", str(bad), "schedule", "--print"])
    assert (
        result.exit_code == 2
        and "schedule.rss: 'every hour' is not a cron expression" in result.output
    )
    bad.write_text('[schedule]\nfsb = "0 * * * *"\n', encoding="utf-8")
    result = CliRunner().invoke(cli, ["--config", str(bad), "schedule", "--print"])
    assert result.exit_code == 2 and "schedule.fsb: not a source" in result.output


def test_catch_up_after_downtime_is_one_run(monkeypatch):
    calls = []
    monkeypatch.setattr(schedule, "run_job", lambda job, *args: calls.append(job.id))
    config = load_config(None)
    scheduler = schedule.build_scheduler(
        config, [], "x.db", BackgroundScheduler(timezone=schedule.HONG_KONG)
    )
    scheduler.start(paused=True)
    try:
        # The machine was down through three hourly fires of crawl:all.
        scheduler.modify_job("crawl:all", next_run_time=datetime.now(UTC) - timedelta(hours=3))
        scheduler.resume()
        waited = time.monotonic() + 10
        while "crawl:all" not in calls and time.monotonic() < waited:
            time.sleep(0.05)
        time.sleep(0.5)  # time enough for any second (wrong) catch-up run
    finally:
        scheduler.shutdown(wait=True)
    assert calls.count("crawl:all") == 1  # (the poll may fire meanwhile: its own job)
    job = schedule.jobs_of(config)[1]
    assert (job.id, schedule.JOB_DEFAULTS) == (
        "crawl:all",
        {"coalesce": True, "max_instances": 1, "misfire_grace_time": 86400},
    )


def test_a_hung_job_is_killed_at_its_deadline(tmp_path):
    # An SMTP server that accepts connections and never says a word.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    port = silent.getsockname()[1]
    config = tmp_path / "c.toml"
    config.write_text(
        f'[smtp]\nhost = "127.0.0.1"\nport = {port}\nsecurity = "none"\ntimeout = 60\n'
        '[operator]\nemails = ["ops@example.com"]\n'
        '[[subscribers]]\nname = "s"\nemails = ["s@example.com"]\ncadence = "daily 08:30"\n',
        encoding="utf-8",
    )
    db = tmp_path / "h.db"
    from storage.db import open_db, write_transaction
    from tracker.delivery import queue_operator_message

    cfg = load_config(config)
    handle = open_db(db)
    with write_transaction(handle):
        queue_operator_message(handle, cfg, "test")
    handle.close()
    job = schedule.Job("digest:s", "digest", "30 8 * * *", ("digest", "--send"))
    started = time.monotonic()
    code = schedule.run_job(
        job, ["--config", str(config), "--db", str(db)], deadline=2, db_path=str(db), grace=1
    )
    assert code == 1
    assert time.monotonic() - started < 15
    silent.close()


def test_a_run_past_its_deadline_exits_3_with_the_unfinished_source_unhealthy(
    site, config, db_path
):
    site.overrides[page_path(DEMO_PAGE)] = Override(body=b"", delay=20)
    slow = dataclasses.replace(config, crawl=dataclasses.replace(config.crawl, timeout=60))
    started = time.monotonic()
    report = run(slow, db_path, sources=["pages"], deadline=3)
    assert time.monotonic() - started < 15
    assert report.exit_status == ExitStatus.SOURCE_UNHEALTHY
    assert report.plans[0].reason.endswith("no result: crawl ended (run deadline of 3 s reached)")


def test_a_second_run_exits_75_while_the_first_holds_the_lock(site, tmp_path, db_path):
    site.overrides[page_path(DEMO_PAGE)] = Override(delay=6, body=b"")
    config = tmp_path / "c.toml"
    config.write_text(
        f"[crawl]\ndownload_delay = 0\nretries = 0\ntimeout = 30\n[sources.rss]\nenabled = false\n"
        f'[sources.pages]\nurls = ["{DEMO_PAGE}"]\n{WWW_ONLY}'
        f'[mirror]\n"https://www.hkma.gov.hk" = "{site.base_url}"\n',
        encoding="utf-8",
    )
    args = ["--config", str(config), "--db", str(db_path), "run"]
    first = subprocess.Popen(
        [sys.executable, "-m", "tracker", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        # Until the first run waits on the slow server (it holds the lock from its start): a
        # generous bound, since a loaded machine can take many seconds to start a crawl.
        deadline = time.monotonic() + 90
        while page_path(DEMO_PAGE) not in site.paths and time.monotonic() < deadline:
            assert first.poll() is None, f"the first run ended early: exit {first.returncode}"
            time.sleep(0.1)
        assert page_path(DEMO_PAGE) in site.paths, "the first run never asked for the page"
        second = CliRunner().invoke(cli, args)
        assert second.exit_code == ExitStatus.LOCKED == 75
        assert "another run is in progress (pid" in second.output
    finally:
        first.wait(timeout=60)
    third = CliRunner().invoke(cli, args)  # the lock went with the first run
    assert third.exit_code != 75


def test_a_redesigned_page_raises_one_operator_alert(site, config, db_path, tmp_path):
    import dataclasses

    alerting = dataclasses.replace(
        config,
        operator=dataclasses.replace(
            config.operator, emails=("ops@example.com",), unhealthy_runs=2
        ),
    )
    run(alerting, db_path, sources=["pages"])
    page = site.root / page_path().lstrip("/") / "index.html"
    page.write_text(
        page.read_text(encoding="utf-8").replace("template-table", "tpl-table"), encoding="utf-8"
    )
    for _ in range(3):
        report = run(alerting, db_path, sources=["pages"])
        assert report.exit_status == ExitStatus.SOURCE_UNHEALTHY
    alerts = sorted((tmp_path / "digests").glob("*-operator.eml"))
    assert len(alerts) == 1
    from email import message_from_bytes, policy

    alert = message_from_bytes(alerts[0].read_bytes(), policy=policy.default)
    assert alert["Subject"] == "HKMA tracker: source pages is broken"
    assert "sharp drop: 1 items where the last healthy run had 84" in alert.get_content()
    with __import__("sqlite3").connect(db_path) as conn:
        assert conn.execute(
            "SELECT count(*) FROM documents WHERE status = 'removed'"
        ).fetchone() == (0,)


def test_dead_man_check_flags_a_source_without_a_recent_healthy_run(
    site, config, db_path, tmp_path
):
    import sqlite3

    run(config, db_path, sources=["pages"])
    with sqlite3.connect(db_path) as conn:  # as if the last healthy run were long ago
        conn.execute("UPDATE source_runs SET finished_at = '2026-01-01T00:00:00+00:00'")
    path = tmp_path / "dead.toml"
    path.write_text(
        f'[sources.pages]\nurls = ["{DEMO_PAGE}"]\n{WWW_ONLY}[sources.rss]\nenabled = false\n'
        f'[schedule]\npages = "0 * * * *"\n[operator]\nemails = ["ops@example.com"]\n'
        f'[digest]\nfolder = "{(tmp_path / "out").as_posix()}"\n',
        encoding="utf-8",
    )
    base = ["--config", str(path), "--db", str(db_path)]
    status = CliRunner().invoke(cli, [*base, "status", "--json"])
    (pages,) = [
        r for r in map(json.loads, status.stdout.splitlines()) if r.get("source") == "pages"
    ]
    assert pages["overdue"] == (
        "no healthy run since 2026-01-01 00:00 UTC (scheduled 0 * * * * (crawl:pages) "
        "Hong Kong time)"
    )
    for _ in range(2):  # told once, not every hour
        assert CliRunner().invoke(cli, [*base, "alerts", "check"]).exit_code == 0
    alerts = list((tmp_path / "out").glob("*-operator.eml"))
    assert len(alerts) == 1
    text = alerts[0].read_text(encoding="utf-8")
    assert "unhealthy in the last 0 runs" not in text  # it was healthy, then silent
    assert "is overdue: its scheduled checks brought no healthy run" in text


def test_logs_can_be_json_lines(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text(
        # INFO: the crawl child then logs each failed listing itself (as detail), in JSON too.
        '[crawl]\ndownload_delay = 0\nretries = 0\nlog_level = "INFO"\n'
        f"[sources.rss]\nenabled = false\n{WWW_ONLY}",
        encoding="utf-8",
    )
    # A real process: the crawl child writes to the same stderr, and must log JSON too.
    result = subprocess.run(
        [
            *(sys.executable, "-m", "tracker", "--log-format", "json"),
            *("--config", str(config), "--db", str(tmp_path / "h.db")),
            *("run", "--mirror", "https://www.hkma.gov.hk=http://127.0.0.1:9"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 3
    records = [json.loads(line) for line in result.stderr.splitlines()]  # every line
    assert any(r["level"] == "ERROR" and "UNHEALTHY" in r["message"] for r in records)
    assert any(r["logger"].startswith(("spiders.", "scrapy.")) for r in records)  # the child
    assert all({"time", "level", "logger", "message"} <= r.keys() for r in records)


def test_sigterm_stops_the_scheduler_cleanly(tmp_path):
    import signal

    # No job may fire while the test runs: under the default schedule a test that met a poll's
    # fire time (every ten minutes on weekdays) waited for that run to finish, past its 20 s.
    never = '"0 3 1 1 *"'
    config = tmp_path / "c.toml"
    config.write_text(f"[schedule]\npoll = {never}\nall = {never}\nfull_sweep = {never}\n")
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "tracker", "-v", "--config", str(config)),
            *("--db", str(tmp_path / "h.db"), "schedule"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        lines = []
        while time.monotonic() < deadline:
            line = process.stderr.readline().decode()
            lines.append(line)
            if "Scheduler started" in line:
                break
        process.send_signal(signal.SIGTERM)
        time.sleep(0.1)
        process.send_signal(signal.SIGTERM)  # a second one (an impatient operator) is ignored
        assert process.wait(timeout=20) == 0
        rest = process.stderr.read().decode()
    finally:
        process.stderr.close()
        if process.poll() is None:
            process.kill()
            process.wait()  # reaped here, not reported as still running during another test
    assert "stopping after the running job" in rest and "Scheduler has been shut down" in rest


HKT = timezone(timedelta(hours=8))
HOURLY_WEEKDAYS = schedule.Watch((schedule.Job("crawl:all", "crawl", "15 8-19 * * mon-fri", ()),))


@pytest.mark.parametrize(
    ("last_healthy", "now", "overdue"),
    [
        # Wednesday 2 December 2026: healthy at 09:20; the 10:15 check may still be running,
        # the 11:15 one has had its hour: overdue once two checks brought nothing.
        (datetime(2026, 12, 2, 9, 20, tzinfo=HKT), datetime(2026, 12, 2, 11, 30, tzinfo=HKT), None),
        (
            datetime(2026, 12, 2, 9, 20, tzinfo=HKT),
            datetime(2026, 12, 2, 12, 30, tzinfo=HKT),
            datetime(2026, 12, 2, 11, 15, tzinfo=HKT),
        ),
        # Healthy on Monday noon, nothing since: on Wednesday it is long overdue.
        (
            datetime(2026, 11, 30, 12, 20, tzinfo=HKT),
            datetime(2026, 12, 2, 10, 0, tzinfo=HKT),
            datetime(2026, 11, 30, 14, 15, tzinfo=HKT),
        ),
        # Healthy on Friday evening: a quiet weekend is no silence, Monday's checks are.
        (
            datetime(2026, 11, 27, 19, 20, tzinfo=HKT),
            datetime(2026, 11, 29, 23, 0, tzinfo=HKT),
            None,
        ),
        (
            datetime(2026, 11, 27, 19, 20, tzinfo=HKT),
            datetime(2026, 11, 30, 10, 0, tzinfo=HKT),
            None,
        ),
        (
            datetime(2026, 11, 27, 19, 20, tzinfo=HKT),
            datetime(2026, 11, 30, 10, 30, tzinfo=HKT),
            datetime(2026, 11, 30, 9, 15, tzinfo=HKT),
        ),
    ],
)
def test_the_dead_man_waits_for_two_missed_checks_not_the_weekend(last_healthy, now, overdue):
    grace = timedelta(hours=1)
    assert _overdue(HOURLY_WEEKDAYS, last_healthy, None, grace, now) == overdue


def test_a_source_never_healthy_is_overdue_once_its_first_check_had_its_time():
    first_run = datetime(2026, 12, 2, 9, 0, tzinfo=HKT)
    grace = timedelta(hours=1)
    assert _overdue(HOURLY_WEEKDAYS, None, first_run, grace, first_run) is None
    late = datetime(2026, 12, 2, 10, 16, tzinfo=HKT)
    assert _overdue(HOURLY_WEEKDAYS, None, first_run, grace, late) == datetime(
        2026, 12, 2, 9, 15, tzinfo=HKT
    )


def test_counting_checks_costs_nothing_per_week_and_agrees_with_cron():
    job = HOURLY_WEEKDAYS.jobs[0]
    start = datetime(2026, 1, 1, 3, 7, tzinfo=UTC)  # a Thursday, mid-morning in Hong Kong
    end = datetime(2028, 2, 29, 11, 15, tzinfo=UTC)  # a fire time, leap day included
    fires, when = 0, job.fire_after(start)
    while when <= end:
        fires, when = fires + 1, job.fire_after(when)
    assert job.count(start, end) == fires
    assert job.count(start, end - timedelta(seconds=1)) == fires - 1  # (after, until]
    assert job.count(end, start) == 0
    monthly = schedule.Job("x", "crawl", "0 9 1 * *", ())  # not weekly: counted one by one
    assert monthly.count(start, datetime(2027, 1, 1, 1, tzinfo=UTC)) == 12  # Feb to Jan


README_SCHEDULE = """
[schedule]
rss = "30 8-18 * * mon-fri"
pages = "0 */3 * * *"
brdr = "0 */3 * * *"
full_sweep = "0 2 * * *"
"""


def test_with_the_readme_schedule_every_source_is_watched(tmp_path, db_path):
    config = tmp_path / "c.toml"
    config.write_text(README_SCHEDULE, encoding="utf-8")
    base = ["--config", str(config), "--db", str(db_path)]
    import sqlite3

    from storage.db import open_db

    open_db(db_path).close()
    with sqlite3.connect(db_path) as conn:  # a run two days ago that saw nothing healthy
        conn.execute(
            "INSERT INTO runs (command, started_at, status) VALUES ('run', ?, 'failed')",
            [(datetime.now(UTC) - timedelta(days=2)).isoformat()],
        )
    status = CliRunner().invoke(cli, [*base, "status", "--json"])
    rows = {r["source"]: r for r in map(json.loads, status.stdout.splitlines()) if "source" in r}
    assert set(rows) == {"rss", "pages", "brdr", "press_releases", "sfc", "ia"}
    # Press releases (and the SFC and the IA) run only in the full sweep: it schedules them,
    # and they are overdue.
    assert all(r["next_scheduled_run"] for r in rows.values())
    assert rows["press_releases"]["overdue"] == (
        "no healthy run ever (scheduled 0 2 * * * (sweep:full) Hong Kong time)"
    )
    assert "0 */3 * * * (crawl:pages)" in rows["pages"]["overdue"]
    text = CliRunner().invoke(cli, [*base, "status"]).output
    assert "press_releases: not run yet" in text


def test_a_source_no_job_runs_is_a_config_error(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('[schedule]\nrss = "0 * * * *"\n', encoding="utf-8")
    result = CliRunner().invoke(cli, ["--config", str(config), "schedule", "--print"])
    assert result.exit_code == 2
    assert "schedule: source 'pages' is enabled but no job runs it" in result.output
