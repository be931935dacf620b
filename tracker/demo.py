"""`hkma-tracker demo`: day 1 and day 2 of every source, served from 127.0.0.1.

The recorded HKMA site (feeds, a topic page) and loopback fakes of BRDR and the press-release
API answering from records derived from real ones, with PDFs behind the listings
(tracker/demo_site/README.md); loopback fakes of the SFC and the Insurance Authority built from
the shapes public notes describe (tracker/demo_sfc.py, tracker/demo_ia.py say where each comes
from). Day 2 brings what each source brings in life: new feed items and an amended title, an
edited and a removed page row, a revised SPM module, a circular that supersedes another, new
press releases, a PDF whose effective date moved; an SFC circular with an appendix, an SFC
consultation's conclusions and a revised SFC guideline; an IA circular with its annex and a new
version of an IA guideline.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import html
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bs4 import BeautifulSoup

from spiders.normalize import BRDR, clean_title
from tracker.config import Config
from tracker.demo_apis import BrdrFake, DocumentsFake, PressReleasesFake, load
from tracker.demo_ia import IaFake
from tracker.demo_sfc import SfcFake, years_to_read
from tracker.extract import SPM_CODE
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
API = "https://api.hkma.gov.hk"
# The circular a topic-page row links: its row is edited on day 2, and its PDF then says the
# requirements take effect three months later.
MOVED_PDF = "/media/eng/doc/key-information/guidelines-and-circular/2024/20241220e1.pdf"
NEW_PRESS_RELEASES = 3  # served on day 2 only
HKT = timezone(timedelta(hours=8))
SFC_HOSTS = ("https://apps.sfc.hk", "https://www.sfc.hk")  # one loopback server for both
IA = "https://www.ia.org.hk"


DEMO_DOC_TYPES = ["CIR", "GLI", "SPM"]  # the types the BRDR records have


def write_demo_config(workdir: Path) -> Path:
    """The demo's own config beside its database, so that `status`, `alerts check` and
    `report` on it judge it by what it watched (one topic page, three BRDR document types),
    not by the defaults."""
    path = workdir / "demo.toml"
    path.write_text(
        "# What `hkma-tracker demo` watched (the defaults otherwise): use it with demo.db,\n"
        f"# hkma-tracker --config {path} --db {workdir / 'demo.db'} status\n"
        f'[sources.pages]\nurls = ["{DEMO_PAGE}"]\n\n'
        f"[sources.brdr]\ndoc_types = {DEMO_DOC_TYPES!r}\n\n".replace("'", '"')
        + "[documents]\nmax_per_run = 1000\n\n"
        + f'[digest]\nfolder = "{(workdir / "digests").as_posix()}"\n',
        encoding="utf-8",
    )
    return path


def demo_config(config: Config, workdir: Path, mirrors: dict[str, str]) -> Config:
    sources = {name: dict(spec) for name, spec in config.sources.items()}
    sources["pages"]["urls"] = [DEMO_PAGE]
    sources["brdr"]["doc_types"] = DEMO_DOC_TYPES
    sources["sfc"]["years"] = years_to_read(datetime.now(HKT).year)
    return dataclasses.replace(
        config,
        sources=sources,
        documents=dataclasses.replace(config.documents, max_per_run=1000),
        digest_folder=workdir / "digests",
        mirrors={**config.mirrors, **mirrors},
    )


def brdr_record(old: dict[str, Any], doc_id: str, day: date, **changes: Any) -> dict[str, Any]:
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
    revised = brdr_record(
        module,
        "20261020-70",
        date(2026, 10, 20),
        versionHistoryDocList=[{"docId": module["docId"]}],
    )
    old = min((r for r in records if r["docTypeCode"] == "CIR"), key=lambda r: r["issueDate"])
    successor = brdr_record(
        old,
        "20261125-1",
        date(2026, 11, 25),
        docLongTitle=f"Revised: {old['docLongTitle']}",
        supersededDocList=[{"docId": old["docId"]}],
    )
    module["versionCode"] = old["versionCode"] = "Archive"
    records += [revised, successor]


_BRDR_DOC = re.compile(r"(\d{8}-\d+)-[A-Z]{2}")
_FEED_ITEM = re.compile(r"<item><title>(.*?)</title><link>(.*?)</link>", re.DOTALL)


def _key(url: str) -> str:
    """What names a document whichever link reaches it: its BRDR number, else its path."""
    found = _BRDR_DOC.search(url)
    return found.group(1) if found else urlsplit(url).path


def demo_titles(records: list[dict[str, Any]], releases: list[dict[str, Any]]) -> dict[str, str]:
    """Every document the demo's listings link, by `_key`: its title as listed."""
    titles = {_key(r["docId"]): re.sub(r"<br\s*/?>", " ", r["docLongTitle"]) for r in records}
    titles |= {_key(r["link"]): r["title"] for r in releases}
    for day in ("day1", "day2"):
        for feed in (DEMO_SITE / day).rglob("*.xml"):
            for title, link in _FEED_ITEM.findall(feed.read_text(encoding="utf-8")):
                titles.setdefault(_key(html.unescape(link)), html.unescape(title))
        for page in (DEMO_SITE / day).rglob("index.html"):
            soup = BeautifulSoup(page.read_text(encoding="utf-8"), "html.parser")
            for link in soup.select("a[href]"):
                text = " ".join(link.get_text(" ").split())
                if text and len(text) > 12:
                    titles.setdefault(_key(str(link["href"])), text)
    return titles


_TYPOGRAPHY = str.maketrans({"“": '"', "”": '"', "‘": "'", "’": "'", "–": "-", "—": "-"})


def _latin1(line: str) -> str:
    """A line the demo's PDFs can carry (their one font is Latin-1): quotes and dashes made
    plain, anything else outside it a question mark."""
    return line.translate(_TYPOGRAPHY).encode("latin-1", "replace").decode("latin-1")


def _spelled(day: date) -> str:
    return f"{day.day} {day:%B %Y}"


@dataclass
class DemoTexts:
    """Each demo document's own text, written from its title: a press release or speech says
    what it announces; a circular is a letter with a reference, its subject, and the date it
    takes effect (a consultation: when comments close), counted from the day the demo runs so
    that deadlines lie ahead. Paths in `moved` take effect three months later (day 2)."""

    titles: dict[str, str]
    today: date
    moved: set[str] = field(default_factory=set)

    def __call__(self, path: str) -> list[str] | None:
        key = _key(path)
        title = clean_title(self.titles.get(key))
        if not title:
            return None
        if any(part in path for part in ("/news-and-media/", "/speeches/", "/press-release")):
            said = [title, f"{title}.", "The Hong Kong Monetary Authority announced this today."]
            return [_latin1(line) for line in said]
        seed = int(hashlib.sha256(key.encode()).hexdigest(), 16)
        lines = [
            title,
            f"Our Ref.: B{1 + seed % 9}/{10 + seed % 80}C",
            _spelled(self.today - timedelta(days=seed % 20)),
            "The Chief Executive",
            "All authorized institutions",
            "Dear Sir / Madam,",
            title,
            f"I am writing to inform you of the following: {title}.",
        ]
        lines += [f"Please read it with SPM module {code}." for code in SPM_CODE.findall(title)]
        if "consult" in title.lower():
            closes = self.today + timedelta(days=14 + seed % 40)
            lines.append(f"Please send your comments by {_spelled(closes)}.")
        else:
            effective = self.today + timedelta(days=21 + seed % 70)
            if path in self.moved:
                effective += timedelta(days=91)
            lines.append(f"The requirements will take effect on {_spelled(effective)}.")
        return [_latin1(line) for line in [*lines, "Yours faithfully,", "Deputy Chief Executive"]]


def run_demo(config: Config, workdir: Path) -> tuple[RunReport, RunReport, Path]:
    """Crawl day 1, then day 2, into `workdir/demo.db`; return both reports and the db path."""
    workdir.mkdir(parents=True, exist_ok=True)
    db_path = workdir / "demo.db"
    if db_path.exists():
        raise FileExistsError(f"{db_path} exists: the demo needs a fresh folder")
    records = load("brdr-records.json")
    releases = load("press-releases.json")
    press = PressReleasesFake(releases[NEW_PRESS_RELEASES:])
    today = datetime.now(HKT).date()
    sfc, ia = SfcFake(), IaFake.for_year(today.year)
    with (
        RecordedSite(DEMO_SITE / "day1") as site,
        RecordedSite(workdir) as brdr,
        RecordedSite(workdir) as api,
        RecordedSite(workdir) as sfc_site,
        RecordedSite(workdir) as ia_site,
    ):
        texts = DemoTexts(demo_titles(records, releases), today)
        site.fallback = brdr.fallback = DocumentsFake(texts)
        brdr.handlers[BrdrFake.path] = BrdrFake(records)
        api.handlers[PressReleasesFake.path] = press
        sfc_site.handlers.update(sfc.routes())
        sfc_site.fallback = sfc.fallback
        ia_site.handlers.update(ia.routes([today.year, today.year - 1]))
        ia_site.fallback = ia.fallback
        mirrors = {HKMA: site.base_url, BRDR: brdr.base_url, API: api.base_url}
        mirrors |= {host: sfc_site.base_url for host in SFC_HOSTS} | {IA: ia_site.base_url}
        cfg = demo_config(config, workdir, mirrors)
        day1 = run(cfg, db_path, full_sweep=True)
        site.root = DEMO_SITE / "day2"
        day2_records(records)
        texts.titles.update(demo_titles(records, releases))  # the records day 2 adds
        press.records = releases
        texts.moved.add(MOVED_PDF)
        sfc.day2()
        ia.day2()
        day2 = run(cfg, db_path, full_sweep=True)
    write_demo_config(workdir)
    return day1, day2, db_path
