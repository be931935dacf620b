"""Benchmark: what a full BRDR sweep costs against an incremental run.

Served from 127.0.0.1: a BRDR register of about 1,500 current records over the nine default
document types and twelve years (2015-2026), written from the real records of
tracker/demo_site/api/brdr-records.json (each real record re-issued once a year, spread over the
types), paged 100 a request as the defaults ask. Runs, on one database: the first run (a full
sweep by itself: no baseline yet), an incremental run (THIS_YEAR), a full sweep with nothing
changed, and a full sweep after ten records left the register (their landing pages are read).
Linked documents are off: this measures the listings. Prints requests, bytes, wall time and
events of each, and the full/incremental ratios. Run: `python bench/sweep.py` (or `make bench`).
"""

from __future__ import annotations

import copy
import sys
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from measure import OTHER_REGULATORS_OFF

from tracker.config import Config, load_config
from tracker.demo_apis import BrdrFake, load
from tracker.loopback import RecordedSite
from tracker.run import run

HK = timezone(timedelta(hours=8))
TYPES = ["CIR", "GLI", "IGL", "SPM", "SPM-NGL", "SPM-SGL", "CPR", "GTA", "COP"]
YEARS = range(2015, 2027)


def build_register() -> list[dict]:
    records = []
    for n, real in enumerate(load("brdr-records.json")):
        issued = datetime.strptime(real["issueDateStr"], "%d %b %Y").date()
        for year in YEARS:
            day = issued.replace(year=year)
            record = copy.deepcopy(real)
            doc_id = f"{day:%Y%m%d}-{100 + n}"
            midnight = datetime(day.year, day.month, day.day, tzinfo=HK)
            record.update(
                docId=f"{doc_id}-EN",
                docTypeCode=TYPES[(n + year) % len(TYPES)],
                spmCode=None,  # one document per record: the register's full size is listed
                issueDateStr=day.strftime("%d %b %Y"),
                issueDate=int(midnight.timestamp() * 1000),
            )
            records.append(record)
    return records


def measure(label: str, site: RecordedSite, config: Config, db: Path, **options) -> dict:
    site.reset_counters()
    started = time.perf_counter()
    report = run(config, db, **options)
    wall = time.perf_counter() - started
    plan = report.plans[0]
    figures = {
        "requests": site.requests,
        "bytes": site.bytes_sent,
        "wall_s": wall,
        "items": len(plan.seen),
        "events": len(report.events),
        "lookups": sum(p.startswith("/eng/doc-ldg/") for p in site.paths),
        "healthy": plan.healthy,
        "sweep": plan.sweep_reason,
    }
    print(
        f"{label:24} requests {site.requests:4d} (landing pages {figures['lookups']:2d})  "
        f"bytes {site.bytes_sent:10,d}  wall {wall:5.2f} s  items {figures['items']:5d}  "
        f"events {figures['events']:4d}  [{plan.sweep_reason}]"
    )
    return figures


def main() -> int:
    fake = BrdrFake(build_register(), this_year=date.today().year)
    current = len(fake.records)
    with tempfile.TemporaryDirectory(prefix="hkma-bench-") as tmp:
        config_path = Path(tmp) / "bench.toml"
        config_path.write_text(
            "[crawl]\ndownload_delay = 0\nretries = 0\n"
            f"{OTHER_REGULATORS_OFF}"
            "[sources.rss]\nenabled = false\n[sources.pages]\nenabled = false\n"
            "[sources.press_releases]\nenabled = false\n[documents]\nenabled = false\n"
            f'[digest]\nfolder = "{(Path(tmp) / "digests").as_posix()}"\n',
            encoding="utf-8",
        )
        db = Path(tmp) / "bench.db"
        with RecordedSite(Path(tmp)) as site:
            site.handlers[BrdrFake.path] = fake
            site.fallback = fake.landing
            config = load_config(config_path, [f"https://brdr.hkma.gov.hk={site.base_url}"])
            first = measure("first run (no baseline)", site, config, db)
            incremental = measure("incremental", site, config, db)
            sweep = measure("full sweep, no change", site, config, db, full_sweep=True)
            for record in fake.records[::150][:10]:
                record["versionCode"] = "Archive"
            departures = measure("full sweep, 10 departed", site, config, db, full_sweep=True)
    print(
        f"register {current} records; full sweep / incremental: "
        f"requests {sweep['requests'] / incremental['requests']:.1f}x, "
        f"bytes {sweep['bytes'] / incremental['bytes']:.1f}x, "
        f"wall {sweep['wall_s'] / incremental['wall_s']:.1f}x"
    )
    ok = (
        all(f["healthy"] for f in (first, incremental, sweep, departures))
        and first["items"] == current
        and incremental["events"] == sweep["events"] == 0
        and departures["events"] == departures["lookups"] == 10
    )
    print(
        "OK: whole register recorded; quiet re-runs; 10 departures, 10 lookups" if ok else "FAILED"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
