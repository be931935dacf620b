"""Fault pass: `kill -9` of a run at points spread over all its phases, then a clean run.

Served from 127.0.0.1: the recorded site (tracker/demo_site, day 1 then day 2), every row's
PDF built like the tests' (tracker/demo_apis.py DocumentsFake, some slow to read). A reference
history is made by clean runs (day 1, day 2). Then, for each of N points spread over a run's
duration, a run is started as its own process and killed with SIGKILL at that point, and the
next clean run is started at once: it must not meet the lock (exit 75), must start within
seconds, and the database must pass `PRAGMA integrity_check`. At the end the history must hold
exactly the reference's documents (same content hashes) and change events (same documents,
kinds and fields, none lost, none twice). Prints one line per kill and a verdict.
Run: `python bench/kill_pass.py [N]`.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from measure import OTHER_REGULATORS_OFF

from tracker.demo import DEMO_PAGE, DEMO_SITE
from tracker.demo_apis import CIRCULAR, DocumentsFake, make_pdf
from tracker.loopback import Override, RecordedSite, ServedRequest

HKMA = "https://www.hkma.gov.hk"


class SlowPdfs(DocumentsFake):
    """Every tenth PDF takes a few seconds to read, so that kills land in extraction too."""

    def __call__(self, request: ServedRequest) -> Override:
        if request.path.endswith(".pdf") and hash(request.path) % 10 == 0:
            body = make_pdf([f"Document {request.path}", *CIRCULAR * 40], pages=60)
            return Override(body=body, content_type="application/pdf")
        return super().__call__(request)


def write_config(folder: Path) -> Path:
    path = folder / "c.toml"
    path.write_text(
        "[crawl]\ndownload_delay = 0\nretries = 0\n"
        f"{OTHER_REGULATORS_OFF}"
        "[sources.brdr]\nenabled = false\n[sources.press_releases]\nenabled = false\n"
        f'[sources.pages]\nurls = ["{DEMO_PAGE}"]\n'
        "[documents]\nmax_per_run = 1000\n"
        f'[digest]\nfolder = "{(folder / "digests").as_posix()}"\n',
        encoding="utf-8",
    )
    return path


def command(config: Path, db: Path, base: str) -> list[str]:
    return [
        *(sys.executable, "-m", "tracker", "--config", str(config), "--db", str(db)),
        *("run", "--mirror", f"{HKMA}={base}"),
    ]


def clean_run(config: Path, db: Path, base: str) -> tuple[int, float]:
    started = time.monotonic()
    done = subprocess.run(command(config, db, base), capture_output=True, timeout=600)
    return done.returncode, time.monotonic() - started


def history(db: Path) -> tuple[dict[str, str], Counter]:
    with sqlite3.connect(db) as conn:
        documents = dict(conn.execute("SELECT id, content_hash FROM documents"))
        events = Counter(conn.execute("SELECT document_id, kind, fields, baseline FROM changes"))
    return documents, events


def copy_db(source: Path, target: Path) -> None:
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)


def main() -> int:
    points = int(sys.argv[1]) if len(sys.argv) > 1 else 12
    failures, hits = [], 0
    with tempfile.TemporaryDirectory(prefix="hkma-bench-") as tmp:
        root = Path(tmp) / "site"
        config = write_config(Path(tmp))
        with RecordedSite(root) as site:
            site.fallback = SlowPdfs()
            references, durations = {}, {}
            previous = None
            for day in (1, 2):
                shutil.rmtree(root, ignore_errors=True)
                shutil.copytree(DEMO_SITE / f"day{day}", root)
                references[day] = Path(tmp) / f"reference-{day}.db"
                if previous:
                    copy_db(previous, references[day])
                _, durations[day] = clean_run(config, references[day], site.base_url)
                previous = references[day]
                print(f"reference day {day}: {durations[day]:.1f} s")

            for day in (1, 2):
                shutil.rmtree(root)
                shutil.copytree(DEMO_SITE / f"day{day}", root)
                expected = history(references[day])
                for n in range(points):
                    db = Path(tmp) / f"killed-{day}-{n}.db"
                    if day == 2:
                        copy_db(references[1], db)
                    at = durations[day] * (n + 0.5) / points
                    victim = subprocess.Popen(
                        command(config, db, site.base_url),
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                    time.sleep(at)
                    hit = victim.poll() is None
                    if hit:
                        os.kill(victim.pid, signal.SIGKILL)
                        hits += 1
                    victim.wait()
                    code, took = clean_run(config, db, site.base_url)
                    with sqlite3.connect(db) as conn:
                        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
                    documents, events = history(db)
                    lost = sum((expected[1] - events).values())
                    twice = sum((events - expected[1]).values())
                    same = documents == expected[0]
                    line = (
                        f"day {day} kill at {at:5.1f} s{'' if hit else ' (had finished)'}: "
                        f"next run exit {code} in {took:4.1f} s, integrity {integrity}, "
                        f"documents same {same}, events lost {lost}, twice {twice}"
                    )
                    print(line)
                    if code == 75 or integrity != "ok" or not same or lost or twice:
                        failures.append(line)
    print(f"{hits} kills landed in a running run, {len(failures)} failures")
    print("OK: nothing lost, nothing twice, the lock never held" if not failures else "FAILED")
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
