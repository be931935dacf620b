"""Benchmark: from publication to inbox, with the real scheduler and a real mail server.

`hkma-tracker schedule` (APScheduler, each job its own process) runs the fast poll against
loopback fakes of HKMA's feeds (the recorded site), BRDR and the press-release API, each on a
loopback address of its own, paced as HKMA's hosts would be (`[crawl] throttle_mirrors`: 2 s
between requests to a host). While it runs, the fakes publish circulars (an RSS item and its
BRDR record) and press releases at random moments; an SMTP server (aiosmtpd on 127.0.0.1)
notes when each reaches the inbox of a subscriber with cadence "run". Titles are real HKMA
titles (tracker/demo_site/api) with a marker appended.

The poll fires every minute here, not every 10 minutes: the same job and code path, its interval
scaled down (a cron's finest step). Latency is the wait for the next poll plus that poll's run;
the bench prints both, and what the default 10-minute interval makes of them. It also prints
the listing bytes per poll, from the runs' own figures.

Run: `python bench/freshness.py [--minutes 8] [--publications 16] [--seed 1]` (about
`minutes` + 4 minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from measure import OTHER_REGULATORS_OFF

from tracker.config import load_config
from tracker.demo import API, BRDR, DEMO_DOC_TYPES, DEMO_SITE, HKT, brdr_record
from tracker.demo_apis import BrdrFake, DocumentsFake, PressReleasesFake, load
from tracker.loopback import RecordedSite
from tracker.schedule import jobs_of
from tracker.sources import HKMA

FEED = "eng/other-information/rss/rss_circulars.xml"
MARKER = re.compile(r"\(bench (circular|release) (\d+)\)")
DEFAULT_INTERVAL = 600  # seconds: the default schedule's poll in business hours


class Inbox:
    """An aiosmtpd handler noting when each marked title first arrives."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        self.messages = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        now = time.time()
        message = message_from_bytes(envelope.content, policy=policy.default)
        body = message.get_body(("plain",))
        text = body.get_content() if body is not None else ""
        self.messages += 1
        for kind, n in MARKER.findall(text):
            self.arrived.setdefault(f"{kind} {n}", now)
        return "250 OK"


@dataclass
class Publisher:
    """Publishes on the fakes: a circular is a new first item of the circulars feed and a new
    BRDR circular record; a release is a new first record of the press-release API."""

    feed: Path
    brdr: BrdrFake
    press: PressReleasesFake
    published: dict[str, float] = field(default_factory=dict)
    _circulars: list[dict[str, Any]] = field(default_factory=list)
    _releases: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._circulars = [r for r in self.brdr.records if r["docTypeCode"] == "CIR"]
        self._releases = list(self.press.records)

    def publish(self, kind: str, n: int) -> None:
        today = datetime.now(HKT).date()
        if kind == "circular":
            base = self._circulars[n % len(self._circulars)]
            title = f"{base['docLongTitle']} (bench circular {n})"
            doc_id = f"{today:%Y%m%d}-{900 + n}"
            self.brdr.records.append(brdr_record(base, doc_id, today, docLongTitle=title))
            item = (
                f"<item><title>{title}</title>"
                f"<link>{BRDR}/eng/doc-ldg/current/{doc_id}-EN</link>"
                f"<pubDate>{today:%a, %d %b %Y} 00:00:00 +0800</pubDate><description /></item>"
            )
            text = self.feed.read_text(encoding="utf-8").replace("<item>", item + "<item>", 1)
            staged = self.feed.with_suffix(".new")
            staged.write_text(text, encoding="utf-8")
            staged.replace(self.feed)  # whole or not at all, as a server would serve it
        else:
            base = self._releases[n % len(self._releases)]
            link = (
                f"{HKMA}/eng/news-and-media/press-releases/{today:%Y/%m}/{today:%Y%m%d}-{90 + n}/"
            )
            record = {"title": f"{base['title']} (bench release {n})", "link": link}
            self.press.records.insert(0, {**record, "date": today.isoformat()})
        self.published[f"{kind} {n}"] = time.time()


def config_text(tmp: Path, port: int, mirrors: dict[str, str]) -> str:
    mirror = "".join(f'"{origin}" = "{base}"\n' for origin, base in mirrors.items())
    return f"""
[crawl]
throttle_mirrors = true         # each fake waits its turn as its HKMA host would (2 s a request)

[sources.pages]
enabled = false                 # no topic page in a poll; the hourly run reads them
{OTHER_REGULATORS_OFF}

[sources.brdr]
doc_types = {json.dumps(DEMO_DOC_TYPES)}

[schedule]
poll = "* * * * *"              # the default's every 10 minutes, scaled to every minute
all = "0 3 1 1 *"               # not while the bench runs
full_sweep = "0 3 1 1 *"

[smtp]
host = "127.0.0.1"
port = {port}
security = "none"
from = "HKMA Tracker <tracker@example.com>"

[[subscribers]]
name = "everything"
emails = ["compliance@example.com"]
cadence = "run"

[digest]
folder = "{(tmp / "digests").as_posix()}"

[mirror]
{mirror}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentiles(values: list[float]) -> str:
    if not values:
        return "none"
    ordered = sorted(values)

    def at(share: float) -> float:
        return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]

    return f"p50 {at(0.5):6.1f} s  p95 {at(0.95):6.1f} s  max {ordered[-1]:6.1f} s"


def poll_runs(db: Path) -> list[tuple[float, float, dict[str, int]]]:
    """(started, finished, listing bytes per source) of every poll, as epoch seconds."""
    with sqlite3.connect(db) as conn:
        runs = conn.execute(
            "SELECT id, started_at, finished_at FROM runs WHERE command = 'poll' "
            "AND finished_at IS NOT NULL ORDER BY id"
        ).fetchall()
        found = []
        for run_id, started, finished in runs:
            sizes = dict(
                conn.execute("SELECT source, bytes FROM source_runs WHERE run_id = ?", [run_id])
            )
            found.append(
                (
                    datetime.fromisoformat(started).timestamp(),
                    datetime.fromisoformat(finished).timestamp(),
                    sizes,
                )
            )
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--minutes", type=float, default=8.0, help="publishing lasts this long")
    parser.add_argument("--publications", type=int, default=16)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    tmp = Path(tempfile.mkdtemp(prefix="hkma-freshness-"))
    shutil.copytree(DEMO_SITE / "day1", tmp / "site")
    brdr = BrdrFake(load("brdr-records.json"), this_year=datetime.now(HKT).year)
    press = PressReleasesFake(load("press-releases.json"))
    inbox = Inbox()
    port = free_port()
    smtp = Controller(inbox, hostname="127.0.0.1", port=port)
    smtp.start()
    scheduler: subprocess.Popen[bytes] | None = None
    try:
        with (
            RecordedSite(tmp / "site", host="127.0.0.1") as site,
            RecordedSite(tmp, host="127.0.0.2") as register,
            RecordedSite(tmp, host="127.0.0.3") as api,
        ):
            site.fallback = register.fallback = DocumentsFake()
            register.handlers[BrdrFake.path] = brdr
            api.handlers[PressReleasesFake.path] = press
            mirrors = {HKMA: site.base_url, BRDR: register.base_url, API: api.base_url}
            config = tmp / "tracker.toml"
            config.write_text(config_text(tmp, port, mirrors), encoding="utf-8")
            db = tmp / "hkma.db"
            cli = [sys.executable, "-m", "tracker", "--config", str(config), "--db", str(db)]
            env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
            # The baseline without the per-host delay and with every document read, so that
            # the polls start from the steady state (no backlog of documents to read).
            quick = tmp / "baseline.toml"
            quick.write_text(
                config.read_text(encoding="utf-8").replace(
                    "throttle_mirrors = true", "throttle_mirrors = false"
                )
                + "[documents]\nmax_per_run = 1000\n",
                encoding="utf-8",
            )
            print("baseline: a full sweep of the fakes ...", flush=True)
            baseline = [sys.executable, "-m", "tracker", "--config", str(quick), "--db", str(db)]
            subprocess.run([*baseline, "run", "--full-sweep"], env=env, check=True)
            inbox.arrived.clear()
            publisher = Publisher(tmp / "site" / FEED, brdr, press)
            moments = sorted(rng.uniform(0, args.minutes * 60) for _ in range(args.publications))
            kinds = [rng.choice(("circular", "circular", "release")) for _ in moments]
            log = tmp / "schedule.log"
            with log.open("wb") as out:
                scheduler = subprocess.Popen([*cli, "schedule"], env=env, stdout=out, stderr=out)
            began = time.time()
            for n, (moment, kind) in enumerate(zip(moments, kinds, strict=True)):
                time.sleep(max(0.0, began + moment - time.time()))
                publisher.publish(kind, n)
            waited = time.time() + 240
            while time.time() < waited and len(inbox.arrived) < len(publisher.published):
                time.sleep(1)
            scheduler.send_signal(signal.SIGTERM)  # the running job finishes first
            scheduler.wait(timeout=600)
            polls = poll_runs(db)
    finally:
        if scheduler is not None and scheduler.poll() is None:
            scheduler.kill()
        smtp.stop()
    report(args, publisher, inbox, polls)
    if len(inbox.arrived) < len(publisher.published):
        print(f"some never arrived: the scheduler's log and the database are in {tmp}")
        return 1
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


def report(
    args: argparse.Namespace,
    publisher: Publisher,
    inbox: Inbox,
    polls: list[tuple[float, float, dict[str, int]]],
) -> None:
    latency, waiting, running = [], [], []
    starts = [started for started, _, _ in polls]
    for name, published in publisher.published.items():
        if name not in inbox.arrived:
            continue
        arrived = inbox.arrived[name]
        latency.append(arrived - published)
        picked = next((s for s in starts if s >= published), None)
        if picked is not None and picked <= arrived:
            waiting.append(picked - published)
            running.append(arrived - picked)
    missing = sorted(set(publisher.published) - set(inbox.arrived))
    print(
        f"\nfreshness: poll every minute (the default's 10 minutes scaled), "
        f"{len(publisher.published)} publications over {args.minutes:g} minutes, seed {args.seed}"
    )
    print(f"  {len(polls)} polls, {inbox.messages} messages to the cadence-'run' subscriber")
    print(f"  a poll's run, start to end:      {percentiles([f - s for s, f, _ in polls])}")
    print(f"cadence run, publication -> inbox: {percentiles(latency)}")
    print(f"  waiting for the next poll:       {percentiles(waiting)}")
    print(f"  the poll's run, start -> inbox:  {percentiles(running)}")
    print(f"  missing: {', '.join(missing) or 'none'}")
    if running:
        run_p95 = sorted(running)[min(len(running) - 1, round(0.95 * (len(running) - 1)))]
        projected = 0.95 * DEFAULT_INTERVAL + run_p95
        goal = DEFAULT_INTERVAL + 120
        print(
            f"at the default 10-minute interval: p95 about {projected:.0f} s (0.95 x 600 s of "
            f"waiting + the run's p95); goal {goal} s: {'met' if projected <= goal else 'NOT met'}"
        )
    totals = [sum(sizes.values()) for _, _, sizes in polls]
    if totals:
        by_source: dict[str, list[int]] = {}
        for _, _, sizes in polls:
            for source, size in sizes.items():
                by_source.setdefault(source, []).append(size)
        means = ", ".join(f"{s} {sum(v) / len(v) / 1024:.0f} KB" for s, v in by_source.items())
        mean = sum(totals) / len(totals)
        week_start = datetime(2026, 11, 30, tzinfo=HKT)  # a Monday
        (poll_job,) = [j for j in jobs_of(load_config(None)) if j.kind == "poll"]
        per_day = poll_job.count(week_start, week_start + timedelta(days=7)) / 7
        brdr = by_source.get("brdr", [0])
        nine_types = mean + (9 / len(DEMO_DOC_TYPES) - 1) * sum(brdr) / len(brdr)
        print(
            f"listing bytes per poll: mean {mean / 1024:.0f} KB, max {max(totals) / 1024:.0f} KB "
            f"({means}); with all 9 BRDR document types about {nine_types / 1024:.0f} KB"
        )
        print(
            f"  the default schedule polls {per_day:.0f} times a day on average: about "
            f"{per_day * nine_types / 1024 / 1024:.0f} MB of listings a day"
        )


if __name__ == "__main__":
    sys.exit(main())
