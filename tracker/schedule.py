"""`hkma-tracker schedule`: APScheduler 3.x cron jobs in Hong Kong time, built from the config.

Every job runs the command line in a child process with a hard deadline: a stuck crawl is
killed and recorded as failed, and the scheduler itself never hangs. Jobs coalesce, never
overlap themselves, and tolerate a day of lateness: after downtime, one catch-up run.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import logging
import os
import signal
import subprocess
import sys
from bisect import bisect_right
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from types import FrameType
from typing import TYPE_CHECKING, Any

from storage.db import open_db
from storage.history import close_interrupted_runs
from tracker.config import Config

if TYPE_CHECKING:
    from apscheduler.schedulers.base import BaseScheduler
    from apscheduler.triggers.base import BaseTrigger

logger = logging.getLogger(__name__)
HONG_KONG = "Asia/Hong_Kong"
DEFAULT_SCHEDULE = {
    # The fast poll of the cheap listings (`run --poll`): every 10 minutes from 08:00 to 20:30
    # on working days (the SFC publishes mostly 16:00-20:00), hourly otherwise. A new circular
    # reaches the inbox within the interval plus a run (bench/freshness.py measures it).
    "poll": "*/10 8-19 * * mon-fri | 0-30/10 20 * * mon-fri | 0 * * * *",
    "all": "15 8-19 * * mon-fri",  # every hour of the working day: every listing
    # A daily full BRDR / press-release reconciliation: what incremental runs cannot see
    # (a document gone from the register, an edit to an old record) is caught within a day.
    "full_sweep": "0 2 * * *",
}
# A day of grace: after downtime, one catch-up run (coalesced), not one per missed fire.
JOB_DEFAULTS = {"coalesce": True, "max_instances": 1, "misfire_grace_time": 86400}
DEFAULT_JOB_DEADLINE = 3600  # seconds, when [run] deadline is 0
# A poll ends (cut, what it has stored) before the next is due, rather than make it wait.
POLL_DEADLINE = 420
GRACE = 120  # seconds a run gets after its own deadline to store what it has


WEEK = timedelta(days=7)
# A Monday 00:00 in Hong Kong, which keeps UTC+8 all year (no daylight saving since 1979): a
# cron without day-of-month and month fields fires at the same offsets in every week after it.
_WEEK_START = datetime(2024, 1, 1, tzinfo=timezone(timedelta(hours=8)))
MAX_ENUMERATED = 100_000  # fire times counted one by one for a cron that is not weekly


def cron_trigger(cron: str) -> BaseTrigger:
    """The trigger of a cron expression, or of several joined by " | " (fires when any does).
    APScheduler is imported here and in `build_scheduler`: a command that computes no fire
    time does not pay for it (about 75 ms)."""
    from apscheduler.triggers.combining import OrTrigger
    from apscheduler.triggers.cron import CronTrigger

    triggers = [
        CronTrigger.from_crontab(part.strip(), timezone=HONG_KONG) for part in cron.split("|")
    ]
    return triggers[0] if len(triggers) == 1 else OrTrigger(triggers)


@dataclass(frozen=True)
class Job:
    id: str
    kind: str  # crawl | sweep | poll | digest | check
    cron: str  # one cron expression, or several joined by " | "
    command: tuple[str, ...]  # hkma-tracker arguments after the global options

    @property
    def trigger(self) -> BaseTrigger:
        return cron_trigger(self.cron)

    def next_run(self, now: datetime) -> datetime | None:
        fire: datetime | None = self.trigger.get_next_fire_time(None, now)
        return fire

    def fire_after(self, moment: datetime) -> datetime | None:
        """The first fire time strictly after `moment`."""
        return self.next_run(moment + timedelta(microseconds=1))

    @functools.cached_property
    def _weekly(self) -> tuple[timedelta, ...] | None:
        """Its fire times as offsets into a week, when it repeats weekly (None otherwise)."""
        if any(part.split()[2:4] != ["*", "*"] for part in self.cron.split("|")):
            return None
        offsets, when = [], self.fire_after(_WEEK_START - timedelta(microseconds=1))
        while when is not None and when < _WEEK_START + WEEK:
            offsets.append(when - _WEEK_START)
            when = self.fire_after(when)
        return tuple(offsets)

    def count(self, after: datetime, until: datetime) -> int:
        """How many fire times fall in (after, until]: in time independent of the span for a
        weekly cron (the offsets of one week, counted per whole week)."""
        if until <= after:
            return 0
        if (week := self._weekly) is None:
            fires, when = 0, self.fire_after(after)
            while when is not None and when <= until and fires < MAX_ENUMERATED:
                fires += 1
                when = self.fire_after(when)
            return fires

        def up_to(moment: datetime) -> int:
            weeks, rest = divmod(moment - _WEEK_START, WEEK)
            return weeks * len(week) + bisect_right(week, rest)

        return up_to(until) - up_to(after)


@dataclass(frozen=True)
class Watch:
    """The jobs that check a source (its own crawl job, or the one for all sources, and the
    full sweep, which runs every source): when it should have been checked."""

    jobs: tuple[Job, ...]

    def next_after(self, moment: datetime) -> datetime | None:
        fires = [f for job in self.jobs if (f := job.fire_after(moment)) is not None]
        return min(fires) if fires else None

    def nth_after(self, moment: datetime, n: int) -> datetime | None:
        """The n-th scheduled check after `moment` (n >= 1)."""
        when: datetime | None = moment
        for _ in range(n):
            if when is None:
                return None
            when = self.next_after(when)
        return when

    def count(self, after: datetime, until: datetime) -> int:
        """Scheduled checks in (after, until] (two jobs firing at one moment count twice)."""
        return sum(job.count(after, until) for job in self.jobs)

    def describe(self) -> str:
        """As cron says it: "15 8-19 * * mon-fri (crawl:all), 0 2 * * * (sweep:full), HKT"."""
        return ", ".join(f"{job.cron} ({job.id})" for job in self.jobs) + " Hong Kong time"


def _cadence_cron(cadence: Any) -> str | None:
    if cadence.kind == "daily":
        return f"{cadence.at.minute} {cadence.at.hour} * * *"
    if cadence.kind == "weekly":
        days = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
        return f"{cadence.at.minute} {cadence.at.hour} * * {days[cadence.weekday]}"
    return None


def jobs_of(config: Config) -> list[Job]:
    """Crawl jobs from `[schedule]` (or the default), digest jobs from subscriber cadences."""
    jobs = []
    for name, cron in (config.schedule or DEFAULT_SCHEDULE).items():
        if name == "full_sweep":
            jobs.append(Job("sweep:full", "sweep", cron, ("run", "--full-sweep")))
        elif name == "poll":
            jobs.append(Job("poll:cheap", "poll", cron, ("run", "--poll")))
        elif name == "all":
            jobs.append(Job("crawl:all", "crawl", cron, ("run",)))
        else:
            jobs.append(Job(f"crawl:{name}", "crawl", cron, ("run", "--source", name)))
    for subscriber in config.subscribers:
        digest_cron = _cadence_cron(subscriber.cadence)
        if digest_cron:
            command = ("digest", "--send", "--subscriber", subscriber.name)
            jobs.append(Job(f"digest:{subscriber.name}", "digest", digest_cron, command))
    return jobs


DEAD_MAN = Job("check:dead-man", "check", "45 * * * *", ("alerts", "check"))


def all_jobs(config: Config) -> list[Job]:
    """The scheduler's jobs: crawls, digests, and the hourly dead-man check."""
    return [*jobs_of(config), DEAD_MAN]


def job_list(config: Config, now: datetime) -> list[dict[str, Any]]:
    """The jobs as `schedule --print` lists them: id, kind, trigger, next run, command."""
    listed = []
    for job in all_jobs(config):
        next_run = job.next_run(now)
        listed.append(
            {
                "id": job.id,
                "kind": job.kind,
                "trigger": f"cron[{job.cron}] Asia/Hong_Kong",
                "next_run": next_run.isoformat() if next_run else None,
                "command": " ".join(job.command),
            }
        )
    return listed


def watch_for(jobs: list[Job], source: str) -> Watch:
    """The jobs that check `source`: its own crawl job (else the one for all sources) and the
    full sweep. No jobs: nothing runs it."""
    by_id = {job.id: job for job in jobs}
    own = by_id.get(f"crawl:{source}") or by_id.get("crawl:all")
    return Watch(tuple(job for job in (own, by_id.get("sweep:full")) if job is not None))


def job_deadline(config: Config, job: Job | None = None) -> int:
    """The deadline of a run the scheduler starts (of `job`, when given)."""
    deadline = int(config.run.deadline or DEFAULT_JOB_DEADLINE)
    return min(deadline, POLL_DEADLINE) if job is not None and job.kind == "poll" else deadline


def run_job(
    job: Job, global_args: list[str], deadline: int, db_path: str, grace: int = GRACE
) -> int:
    """Run one job's command in a child process; kill it past its deadline and say so."""
    command = [sys.executable, "-m", "tracker", *global_args, *job.command]
    if job.kind in ("crawl", "sweep", "poll"):
        command += ["--deadline", str(deadline)]
    logger.info("job %s: %s", job.id, " ".join(job.command))
    # In a session of its own, so that at the deadline the whole group goes: the run and every
    # helper it started (a crawl, a PDF extraction), not only the direct child.
    child = subprocess.Popen(command, start_new_session=True, preexec_fn=_die_with_parent)
    try:
        code = child.wait(timeout=deadline + grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)
        child.wait()
        record_killed(db_path, job, deadline + grace)
        return 1
    if code == 75:
        logger.warning("job %s skipped: another run holds the lock", job.id)
    elif code:
        logger.error("job %s exited %d", job.id, code)
    return code


def _die_with_parent() -> None:
    """In a job's child, before it runs: on Linux, be killed when the scheduler dies (even by
    SIGKILL), rather than run on holding the run lock with no one to stop it."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


PR_SET_PDEATHSIG = 1


def record_killed(db_path: str, job: Job, after: int) -> None:
    """Runs the killed child left 'running' are closed as failed."""
    db = open_db(db_path)
    try:
        close_interrupted_runs(db, f"killed by the scheduler after {after} s", exit_code=1)
    finally:
        db.close()
    logger.error("job %s: run killed after %d s", job.id, after)


def build_scheduler(
    config: Config, global_args: list[str], db_path: str, scheduler: BaseScheduler | None = None
) -> BaseScheduler:
    from apscheduler.schedulers.blocking import BlockingScheduler

    scheduler = scheduler or BlockingScheduler(timezone=HONG_KONG, job_defaults=JOB_DEFAULTS)
    for job in all_jobs(config):
        scheduler.add_job(
            run_job,
            job.trigger,
            args=(job, global_args, job_deadline(config, job), db_path),
            id=job.id,
            name=job.id,
            replace_existing=True,
            **JOB_DEFAULTS,
        )
    return scheduler


def serve(config: Config, global_args: list[str], db_path: str) -> None:
    """Run the scheduler until SIGTERM or Ctrl-C; a running job finishes first."""
    scheduler = build_scheduler(config, global_args, db_path)

    def stop(signum: int, frame: FrameType | None) -> None:
        # Once is enough: a second signal while the running job finishes (or while the
        # interpreter exits) is ignored, not a traceback or a kill.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        logger.warning("signal %d: stopping after the running job", signum)
        scheduler.shutdown(wait=True)

    signal.signal(signal.SIGTERM, stop)  # APScheduler 3 installs no handler of its own
    logger.info("scheduler started with %d jobs", len(scheduler.get_jobs()))
    try:
        scheduler.start()
    except (KeyboardInterrupt, SystemExit):
        scheduler.shutdown(wait=True)
