"""`hkma-tracker demo`: day 1 and day 2 of a recorded HKMA site, served from 127.0.0.1."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from tracker.config import Config
from tracker.loopback import RecordedSite
from tracker.run import RunReport, run
from tracker.sources import HKMA

DEMO_SITE = Path(__file__).parent / "demo_site"
# The recorded site holds this one topic page (the real AML/CFT page); the other default
# pages have no recording, so the demo watches only this one.
DEMO_PAGE = (
    f"{HKMA}/eng/key-functions/banking/anti-money-laundering-and-counter-financing-of-"
    "terrorism/guidance-papers-circulars/"
)


def demo_config(config: Config, workdir: Path, base_url: str) -> Config:
    sources = {name: dict(spec) for name, spec in config.sources.items()}
    sources["pages"]["urls"] = [DEMO_PAGE]
    # Recorded so far: the feeds and one topic page, without the documents they link.
    sources["brdr"]["enabled"] = sources["press_releases"]["enabled"] = False
    return dataclasses.replace(
        config,
        sources=sources,
        documents=dataclasses.replace(config.documents, enabled=False),
        digest_folder=workdir / "digests",
        mirrors={**config.mirrors, HKMA: base_url},
    )


def run_demo(config: Config, workdir: Path) -> tuple[RunReport, RunReport, Path]:
    """Crawl day 1, then day 2, into `workdir/demo.db`; return both reports and the db path."""
    workdir.mkdir(parents=True, exist_ok=True)
    db_path = workdir / "demo.db"
    if db_path.exists():
        raise FileExistsError(f"{db_path} exists: the demo needs a fresh folder")
    with RecordedSite(DEMO_SITE / "day1") as site:
        cfg = demo_config(config, workdir, site.base_url)
        day1 = run(cfg, db_path)
        site.root = DEMO_SITE / "day2"
        day2 = run(cfg, db_path)
    return day1, day2, db_path
