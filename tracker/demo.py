"""`hkma-tracker demo`: day 1 and day 2 of every source, served from 127.0.0.1.

The recorded HKMA site (feeds, a topic page) and loopback fakes of BRDR and the press-release
API answering from records derived from real ones, with PDFs behind the listings
(tracker/demo_site/README.md). Day 2 brings what each source brings in life: new feed items and
an amended title, an edited and a removed page row, a revised SPM module, a circular that
supersedes another, new press releases, and a PDF whose effective date moved.
"""

from __future__ import annotations

import copy
import dataclasses
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from tracker.config import Config
from tracker.demo_apis import CIRCULAR, BrdrFake, DocumentsFake, PressReleasesFake, load, make_pdf
from tracker.loopback import Override, RecordedSite
from tracker.run import RunReport, run
from tracker.sources import HKMA

DEMO_SITE = Path(__file__).parent / "demo_site"
# The recorded site holds this one topic page (the real AML/CFT page); the other default
# pages have no recording, so the demo watches only this one.
DEMO_PAGE = (
    f"{HKMA}/eng/key-functions/banking/anti-money-laundering-and-counter-financing-of-"
    "terrorism/guidance-papers-circulars/"
)
BRDR = "https://brdr.hkma.gov.hk"
API = "https://api.hkma.gov.hk"
# The circular a topic-page row links: its row is edited on day 2, and its PDF then says the
# requirements take effect three months later.
MOVED_PDF = "/media/eng/doc/key-information/guidelines-and-circular/2024/20241220e1.pdf"
NEW_PRESS_RELEASES = 3  # served on day 2 only
HKT = timezone(timedelta(hours=8))


def demo_config(config: Config, workdir: Path, mirrors: dict[str, str]) -> Config:
    sources = {name: dict(spec) for name, spec in config.sources.items()}
    sources["pages"]["urls"] = [DEMO_PAGE]
    sources["brdr"]["doc_types"] = ["CIR", "GLI", "SPM"]  # the types the records have
    return dataclasses.replace(
        config,
        sources=sources,
        documents=dataclasses.replace(config.documents, max_per_run=1000),
        digest_folder=workdir / "digests",
        mirrors={**config.mirrors, **mirrors},
    )


def _brdr_record(old: dict[str, Any], doc_id: str, day: date, **changes: Any) -> dict[str, Any]:
    """A later record derived from `old`, dated as BRDR dates (HK midnight in UTC epoch ms)."""
    record = copy.deepcopy(old)
    midnight = datetime(day.year, day.month, day.day, tzinfo=HKT)
    record.update(
        docId=f"{doc_id}-EN",
        engDocId=f"{doc_id}-EN",
        chiDocId=f"{doc_id}-TC",
        issueDateStr=midnight.strftime("%d %b %Y"),
        issueDate=int(midnight.timestamp() * 1000),
        **changes,
    )
    return record


def day2_records(records: list[dict[str, Any]]) -> None:
    """Day 2 on BRDR: SPM module IC-6 revised (its old record archived), and a circular
    superseding the oldest circular (archived too)."""
    module = next(r for r in records if r.get("spmCode") == "IC-6")
    revised = _brdr_record(
        module,
        "20261020-70",
        date(2026, 10, 20),
        versionHistoryDocList=[{"docId": module["docId"]}],
    )
    old = min((r for r in records if r["docTypeCode"] == "CIR"), key=lambda r: r["issueDate"])
    successor = _brdr_record(
        old,
        "20261125-1",
        date(2026, 11, 25),
        docLongTitle=f"Revised: {old['docLongTitle']}",
        supersededDocList=[{"docId": old["docId"]}],
    )
    module["versionCode"] = old["versionCode"] = "Archive"
    records += [revised, successor]


def run_demo(config: Config, workdir: Path) -> tuple[RunReport, RunReport, Path]:
    """Crawl day 1, then day 2, into `workdir/demo.db`; return both reports and the db path."""
    workdir.mkdir(parents=True, exist_ok=True)
    db_path = workdir / "demo.db"
    if db_path.exists():
        raise FileExistsError(f"{db_path} exists: the demo needs a fresh folder")
    records = load("brdr-records.json")
    releases = load("press-releases.json")
    press = PressReleasesFake(releases[NEW_PRESS_RELEASES:])
    with (
        RecordedSite(DEMO_SITE / "day1") as site,
        RecordedSite(workdir) as brdr,
        RecordedSite(workdir) as api,
    ):
        site.fallback = brdr.fallback = DocumentsFake()
        brdr.handlers[BrdrFake.path] = BrdrFake(records)
        api.handlers[PressReleasesFake.path] = press
        mirrors = {HKMA: site.base_url, BRDR: brdr.base_url, API: api.base_url}
        cfg = demo_config(config, workdir, mirrors)
        day1 = run(cfg, db_path, full_sweep=True)
        site.root = DEMO_SITE / "day2"
        day2_records(records)
        press.records = releases
        moved = [line.replace("1 March 2026", "1 June 2026") for line in CIRCULAR]
        site.overrides[MOVED_PDF] = Override(
            body=make_pdf([f"Document {MOVED_PDF}", *moved]), content_type="application/pdf"
        )
        day2 = run(cfg, db_path, full_sweep=True)
    return day1, day2, db_path
