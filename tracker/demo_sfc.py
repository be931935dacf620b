"""A loopback fake of the SFC's e-Distribution API, RSS feeds and codes and guidelines pages.

Where each field comes from (../shared/hk-regulators.md §1; nothing checked live):
- Search: `POST /edistributionWeb/api/{circular,consultation,news}/search`, body `lang`
  (required: 500 without it), `category`, `year`, 0-based `pageNo`, `pageSize`; response
  `{"items": [...], "total": N}`, a page past the end `items: []` (A1 notes, A2 scripts).
- Circular items: `refNo`, `lang`, `title`, `releasedDate` (no zone, HKT), `postDocType`,
  `appendixDocList[] {fileKeySeq, lang, refNo, caption, dateOnWeb}`, `publicUrl` (A1).
  Consultation items: `cpRefNo`, `cpTitle`, `cpIssueDate`, `commentDeadline`, `ccRefNo`,
  `ccTitle`, `ccIssueDate` (A1, A2). News items: `newsRefNo`, `title`, `issueDate`,
  `newsType` (`GN`/`EF`), `targetCeList[] {ceName, lang, masked}` (A1).
- Reference numbers in the documented series: `26EC45` (a circular's, from the RSS items A2
  saw), `25CP11` -> `25CC7` (A1's CP/CC pair), `26PR121` (A2). The titles are written here in
  the documented shapes ("SFC reprimands and fines ...", "Circular to licensed corporations
  ..."): the real SFC items the notes saw are not in ../shared.
- RSS: `<guid>` = refNo, `<pubDate>` in HKT to the second (A2 ledger).
- Codes and guidelines: rows `tr[data-code-guideline-id][data-code-guideline-topics]`, the
  latest PDF in `td[1]` with `?rev=<32 hex>` and its date as the link's `title`, earlier versions
  in `div.section-popup__content#popup<ID>` (A3's "trimmed real excerpt"); one extra `tr`
  without the id stands for the rows a naive parse would take (A3 SPEC).
"""

from __future__ import annotations

import copy
import html
import json
from dataclasses import dataclass, field
from typing import Any

from tracker.demo_apis import as_json, make_pdf
from tracker.loopback import Override, ServedRequest

API = "/edistributionWeb/api"

CIRCULARS: list[dict[str, Any]] = [
    {
        "refNo": "26EC40",
        "lang": "EN",
        "title": "Circular to licensed corporations on managing cybersecurity risks of "
        "internet trading",
        "releasedDate": "2026-07-15T17:04:26.117",
        "postDocType": 110,
        "appendixDocList": [],
        "publicUrl": "intermediaries/supervision/doc?refNo=26EC40",
    },
    {
        "refNo": "26EC33",
        "lang": "EN",
        "title": "Circular to intermediaries on anti-money laundering and counter-financing "
        "of terrorism: updated guidance on politically exposed persons",
        "releasedDate": "2026-06-29T18:31:02.447",
        "postDocType": 110,
        "appendixDocList": [
            {
                "fileKeySeq": 9101,
                "lang": "EN",
                "refNo": "26EC33",
                "caption": "Appendix - Frequently asked questions on politically exposed persons",
                "dateOnWeb": "2026-06-29",
            }
        ],
        "publicUrl": "aml/doc?refNo=26EC33",
    },
    {
        "refNo": "25EC61",
        "lang": "EN",
        "title": "Circular to registered institutions on the sale of complex products",
        "releasedDate": "2025-11-20T16:27:45.000",
        "postDocType": 110,
        "appendixDocList": [],
        "publicUrl": "intermediaries/supervision/doc?refNo=25EC61",
    },
]
NEW_CIRCULAR = {
    "refNo": "26EC45",
    "lang": "EN",
    "title": "Circular to licensed corporations and registered institutions on the use of "
    "generative artificial intelligence language models",
    "releasedDate": "2026-07-29T17:04:26.000",
    "postDocType": 110,
    "appendixDocList": [
        {
            "fileKeySeq": 9202,
            "lang": "EN",
            "refNo": "26EC45",
            "caption": "Appendix 1 - Expected risk management practices",
            "dateOnWeb": "2026-07-29",
        }
    ],
    "publicUrl": "intermediaries/supervision/doc?refNo=26EC45",
}
CONSULTATIONS: list[dict[str, Any]] = [
    {
        "cpRefNo": "25CP11",
        "cpTitle": "Consultation Paper on proposed enhancements to the Code of Conduct for "
        "licensed corporations on client asset protection",
        "cpIssueDate": "2025-12-05T17:00:00",
        "commentDeadline": "2026-08-31T23:59:00",
        "ccRefNo": None,
        "ccTitle": None,
        "ccIssueDate": None,
    },
    {
        "cpRefNo": "26CP1",
        "cpTitle": "Consultation Paper on the regulatory regime for virtual asset dealers",
        "cpIssueDate": "2026-03-10T16:00:00",
        "commentDeadline": "2026-05-10T23:59:00",
        "ccRefNo": None,
        "ccTitle": None,
        "ccIssueDate": None,
    },
]
CONCLUSIONS = {
    "ccRefNo": "25CC7",
    "ccTitle": "Consultation Conclusions on proposed enhancements to the Code of Conduct for "
    "licensed corporations on client asset protection",
    "ccIssueDate": "2026-07-28T18:00:00",
}
NEWS: list[dict[str, Any]] = [
    {
        "newsRefNo": "26PR121",
        "lang": "EN",
        "title": "SFC reprimands and fines a licensed corporation $4.2 million for "
        "disclosure failures",
        "issueDate": "2026-07-27T12:31:00",
        "newsType": "EF",
        "targetCeList": [{"ceName": "Example Securities Limited", "lang": "EN", "masked": False}],
    },
    {
        "newsRefNo": "26PR109",
        "lang": "EN",
        "title": "SFC concludes consultation on enhancements to the investor compensation regime",
        "issueDate": "2026-07-10T16:10:00",
        "newsType": "GN",
        "targetCeList": [],
    },
]
GUIDELINES: list[dict[str, Any]] = [
    {
        "id": "a3f1c2d4e5b6a7980123456789abcdef",
        "topics": "Intermediaries_supervision",
        "title": "Fit and Proper Guidelines",
        "file": "fit-and-proper-guidelines/Fit-and-Proper-Guidelines.pdf",
        "rev": "d3a9d995e4fa40c89ece44b0fc681e4d",
        "date": "1 Jan 2022",
        "previous": [("16 Nov 2019", "16 Nov 2019 - 31 Dec 2021")],
    },
    {
        "id": "b4e2d3c5f6a7b8091234567890abcdef",
        "topics": "Intermediaries_supervision",
        "title": "Guidelines on Online Distribution and Advisory Platforms",
        "file": "online-platforms/Guidelines-on-Online-Distribution.pdf",
        "rev": "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
        "date": "6 Jul 2019",
        "previous": [],
    },
]
CODES: list[dict[str, Any]] = [
    {
        "id": "c5f3e4d6a7b8c9012345678901abcdef",
        "topics": "Intermediaries_supervision",
        "title": "Code of Conduct for Persons Licensed by or Registered with the Securities "
        "and Futures Commission",
        "file": "code-of-conduct/Code-of-Conduct.pdf",
        "rev": "1a2b3c4d5e6f708192a3b4c5d6e7f809",
        "date": "2 Jan 2026",
        "previous": [("16 Nov 2022", "16 Nov 2022 - 1 Jan 2026")],
    }
]
# The fake's items are dated 2025 and 2026: a full read must go back to 2025 (`years`).
FIRST_YEAR = 2025


def years_to_read(this_year: int) -> int:
    """The `years` option that reaches back to FIRST_YEAR (at least the default, 3)."""
    return max(3, this_year - FIRST_YEAR + 1)


STREAM_DATE = {"circular": "releasedDate", "consultation": "cpIssueDate", "news": "issueDate"}


@dataclass
class SfcFake:
    """The SFC as of day 1; `day2()` brings a new circular with an appendix, the conclusions
    of 25CP11 and a revised guideline. Counts what it was asked."""

    circulars: list[dict[str, Any]] = field(default_factory=lambda: copy.deepcopy(CIRCULARS))
    consultations: list[dict[str, Any]] = field(
        default_factory=lambda: copy.deepcopy(CONSULTATIONS)
    )
    news: list[dict[str, Any]] = field(default_factory=lambda: copy.deepcopy(NEWS))
    guidelines: list[dict[str, Any]] = field(default_factory=lambda: copy.deepcopy(GUIDELINES))
    codes: list[dict[str, Any]] = field(default_factory=lambda: copy.deepcopy(CODES))
    searches: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    probes: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    failing: set[str] = field(default_factory=set)  # streams whose search answers 503
    empty_with_total: set[str] = field(default_factory=set)  # items [] but total > 0

    def day2(self) -> None:
        self.circulars.insert(0, copy.deepcopy(NEW_CIRCULAR))
        self.consultations[0].update(CONCLUSIONS)
        fit = self.guidelines[0]
        fit["previous"].insert(0, (fit["date"], "1 Jan 2022 - 14 Jul 2026"))
        fit.update(date="15 Jul 2026", rev="e5d4c3b2a1f0e9d8c7b6a5f4e3d2c1b0")

    def routes(self) -> dict[str, Any]:
        """Path -> handler, for `RecordedSite.handlers` (the mirror of apps.sfc.hk and of
        www.sfc.hk share one loopback server)."""
        found: dict[str, Any] = {f"{API}/{stream}/search": self.search for stream in STREAM_DATE}
        for stream in STREAM_DATE:
            found[f"{API}/{stream}/openFile"] = self.file
            found[f"{API}/{stream}/openAppendix"] = self.file
        for feed in ("Circulars", "Consultations-and-Conclusions", "Press-releases"):
            found[f"/en/RSS-Feeds/{feed}"] = self.feed
        found["/en/Rules-and-standards/Codes-and-guidelines/Guidelines"] = self.page
        found["/en/Rules-and-standards/Codes-and-guidelines/Codes"] = self.page
        return found

    def records(self, stream: str) -> list[dict[str, Any]]:
        return {"circular": self.circulars, "consultation": self.consultations}.get(
            stream, self.news
        )

    def search(self, request: ServedRequest) -> Override:
        stream = request.path.split("/")[-2]
        if request.method != "POST":
            return as_json({"error": "POST only"}, 405)
        body = json.loads(request.body)
        self.searches.append((stream, body))
        if "lang" not in body:
            return as_json({"error": "lang is required"}, 500)
        if stream in self.failing:
            return Override(status=503, body=b"Service Unavailable")
        year, size, page = str(body.get("year")), int(body["pageSize"]), int(body["pageNo"])
        dated = [r for r in self.records(stream) if str(r[STREAM_DATE[stream]])[:4] == year]
        if stream in self.empty_with_total:
            return as_json({"items": [], "total": len(dated) or 3})
        return as_json({"items": dated[page * size : (page + 1) * size], "total": len(dated)})

    def file(self, request: ServedRequest) -> Override:
        ref = request.query.get("refNo", [""])[0]
        which = request.query.get("appendix", request.query.get("type", ["main"]))[0]
        self.files.append(f"{ref}:{which}")
        lines = [f"Securities and Futures Commission {ref}", f"Document {which} of {ref}"]
        lines += ["This circular sets out the expected standards for intermediaries."]
        return Override(body=make_pdf(lines), content_type="application/pdf")

    def fallback(self, request: ServedRequest) -> Override:
        """A code's or guideline's PDF (`/-/media/...`), current or earlier; anything else
        is not there."""
        if not request.path.startswith("/-/media/") or not request.path.endswith(".pdf"):
            return Override(status=404, body=b"Not Found")
        self.files.append(request.path)
        name = request.path.rsplit("/", 1)[-1]
        lines = [f"Securities and Futures Commission {name}", "Licensed corporations"]
        return Override(body=make_pdf(lines), content_type="application/pdf")

    def feed(self, request: ServedRequest) -> Override:
        self.probes.append(request.path)
        items = {
            "Circulars": [(r["refNo"], r["title"], r["releasedDate"]) for r in self.circulars],
            "Press-releases": [(r["newsRefNo"], r["title"], r["issueDate"]) for r in self.news],
            # It carries press releases about consultations, not the papers (A2).
            "Consultations-and-Conclusions": [
                (r["newsRefNo"], r["title"], r["issueDate"])
                for r in self.news
                if "consult" in r["title"].lower()
            ],
        }[request.path.rsplit("/", 1)[-1]]
        return Override(body=rss(items), content_type="application/rss+xml; charset=utf-8")

    def page(self, request: ServedRequest) -> Override:
        kind = "codes" if request.path.endswith("/Codes") else "guidelines"
        rows = self.codes if kind == "codes" else self.guidelines
        return Override(body=guidelines_page(rows, kind).encode())


def _rfc822(moment: str) -> str:
    from datetime import datetime
    from email.utils import format_datetime

    from spiders.normalize import HONG_KONG

    return format_datetime(datetime.fromisoformat(moment[:19]).replace(tzinfo=HONG_KONG))


def rss(items: list[tuple[str, str, str]]) -> bytes:
    entries = "".join(
        f"<item><title>{html.escape(title)}</title><guid>{ref}</guid>"
        f"<link>https://apps.sfc.hk/edistributionWeb/gateway/EN/circular/doc?refNo={ref}</link>"
        f"<pubDate>{_rfc822(when)}</pubDate><description></description></item>"
        for ref, title, when in items[:7]  # the feeds hold a short window (A2, U)
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>SFC</title>{entries}</channel></rss>"
    ).encode()


def guidelines_page(rows: list[dict[str, Any]], kind: str) -> str:
    base = f"https://www.sfc.hk/-/media/EN/assets/components/codes/files-current/web/{kind}"
    old = f"https://www.sfc.hk/-/media/EN/assets/components/codes/files-previous/web/{kind}"
    body, popups = [], []
    for row in rows:
        versions = row["previous"]
        more = (
            f'<a class="popup-btn" data-popup-id="#popup{row["id"]}">'
            f"{len(versions) + 1} versions</a>"
            if versions
            else "-"
        )
        body.append(
            f'<tr data-code-guideline-id="{row["id"]}" '
            f'data-code-guideline-topics="{row["topics"]}">'
            f"<td>{html.escape(row['title'])}</td>"
            f'<td><a href="{base}/{row["file"]}?rev={row["rev"]}" title="{row["date"]}">PDF</a>'
            f"</td><td>{more}</td></tr>"
        )
        links = "".join(
            f'<a href="{old}/{row["file"].replace(".pdf", "")}-{n}.pdf?rev=0{n}" '
            f'title="{start}">{span}</a>'
            for n, (start, span) in enumerate(versions)
        )
        popups.append(f'<div class="section-popup__content" id="popup{row["id"]}">{links}</div>')
    naive = '<tr><td>Related links</td><td><a href="/x.pdf">PDF</a></td></tr>'
    return (
        "<html><body><table><tbody>"
        + "".join(body)
        + naive
        + "</tbody></table>"
        + "".join(popups)
        + "</body></html>"
    )
