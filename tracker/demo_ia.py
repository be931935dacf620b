"""A loopback fake of the Insurance Authority's circulars, guidelines and press-release pages.

Where each shape comes from (../shared/hk-regulators.md §2; nothing checked live):
- Circulars: one page a year, `/en/legislative_framework/circulars/reg_matters/
  circulars_on_regulatory_matters_{YYYY}.html`; rows `tr` with the date in `td[0]` ("15
  January 2025") and each PDF of the row a document titled by its link text, annexes as
  further PDFs in the same row; several `<table>`s (A3 spec and client; its fixture is
  synthetic, so is this one). File names in the documented, unnumbered forms
  (`Circular_10072026.pdf`, `..._Annex_B.pdf`: U datasets).
- Guidelines: `table.guideline > tbody > tr > td[data-title="Guidelines"]`, the first link
  "GL3: Guideline on ...", sub-documents in `div.subitem li a`, repealed ones without a link,
  "effective from D Month YYYY" in the cell; PDF names with the version (`GL3_ENG_202505.pdf`)
  (U: a guidelines scraper and its findings note).
- Press releases: `/en/infocenter/press_releases/YYYYMMDD.html`, `_1` for a second that day
  (U, P). The titles are written here in the IA's style; the real ones are not in ../shared.
- A bot-refused request: HTTP 403 (A2 METHOD.md).
"""

from __future__ import annotations

import copy
import html
from dataclasses import dataclass, field
from typing import Any

from tracker.demo_apis import make_pdf
from tracker.loopback import Override, ServedRequest

BASE = "/en/legislative_framework"
FILES = f"{BASE}/circulars/reg_matters/files"

CIRCULARS: dict[int, list[Any]] = {
    2026: [
        (
            "10 July 2026",
            [
                (
                    "Circular on the Conduct of Business of Licensed Insurance Intermediaries",
                    "Circular_10072026.pdf",
                )
            ],
        ),
        (
            "2 June 2026",
            [
                (
                    "Circular on Remuneration Structures for Participating Policies",
                    "20260602_Circular_Remuneration_Eng.pdf",
                ),
                ("Annex A - Illustrative examples", "20260602_Annex_A.pdf"),
            ],
        ),
    ],
    2025: [
        (
            "15 January 2025",
            [
                (
                    "Circular on Premium Financing Activities",
                    "Cir_15012025_Premium_Financing_Eng.pdf",
                )
            ],
        )
    ],
}
NEW_CIRCULAR = (
    "29 July 2026",
    [
        ("Circular on Cybersecurity of Authorized Insurers", "Circular_29072026_Cyber_Eng.pdf"),
        ("Annex B - Self-assessment checklist", "Cir_29072026_Annex_B.pdf"),
    ],
)
GUIDELINES: list[dict[str, Any]] = [
    {
        "code": "GL3",
        "title": "Guideline on Anti-Money Laundering and Counter-Terrorist Financing",
        "file": "GL3_ENG_202505.pdf",
        "effective": "2 May 2025",
        "subs": ["Q&A on GL3"],
    },
    {
        "code": "GL20",
        "title": "Guideline on Cybersecurity",
        "file": "GL20_ENG_202001.pdf",
        "effective": "1 January 2020",
        "subs": [],
    },
    {
        "code": "GL1",
        "title": "Guideline on Underwriting Class C Business",
        "file": None,
        "effective": None,
        "subs": [],
    },
]
PRESS = [
    ("20260728", "IA publishes market statistics for the first half of 2026"),
    ("20260728_1", "IA takes disciplinary action against a licensed insurance agent"),
]


@dataclass
class IaFake:
    circulars: dict[int, list[Any]] = field(default_factory=lambda: copy.deepcopy(CIRCULARS))
    guidelines: list[dict[str, Any]] = field(default_factory=lambda: copy.deepcopy(GUIDELINES))
    press: list[tuple[str, str]] = field(default_factory=lambda: list(PRESS))
    refused: set[str] = field(default_factory=set)  # paths answered with 403
    user_agents: list[str] = field(default_factory=list)

    @classmethod
    def for_year(cls, year: int) -> IaFake:
        """The fake with its pages dated `year` and the year before (written as 2026 and
        2025), the two years the spider reads by default."""
        fake = cls()
        fake.circulars = {year: fake.circulars[2026], year - 1: fake.circulars[2025]}
        return fake

    def day2(self) -> None:
        self.circulars[max(self.circulars)].insert(0, copy.deepcopy(NEW_CIRCULAR))
        gl3 = self.guidelines[0]
        gl3.update(file="GL3_ENG_202607.pdf", effective="15 July 2026")

    def routes(self, years: list[int]) -> dict[str, Any]:
        found: dict[str, Any] = {
            f"{BASE}/circulars/reg_matters/circulars_on_regulatory_matters_{y}.html": self.year
            for y in years
        }
        found[f"{BASE}/guidelines.php"] = self.guidelines_page
        found["/en/infocenter/press_releases.html"] = self.press_page
        return found

    def fallback(self, request: ServedRequest) -> Override:
        """Any PDF or press release linked from the pages."""
        name = request.path.rsplit("/", 1)[-1]
        if name.endswith(".pdf"):
            return Override(
                body=make_pdf([f"Insurance Authority {name}", "All authorized insurers"]),
                content_type="application/pdf",
            )
        return Override(body=f"<html><body><h1>{html.escape(name)}</h1></body></html>".encode())

    def _refuse(self, request: ServedRequest) -> Override | None:
        self.user_agents.append(request.headers.get("user-agent", ""))
        if request.path in self.refused:
            return Override(status=403, body=b"<html><body>Access denied</body></html>")
        return None

    def year(self, request: ServedRequest) -> Override:
        if refused := self._refuse(request):
            return refused
        year = int(request.path.rsplit("_", 1)[-1].split(".")[0])
        rows = []
        for when, links in self.circulars.get(year, []):
            anchors = " ".join(
                f'<a href="files/{name}">{html.escape(title)}</a>' for title, name in links
            )
            rows.append(f"<tr><td>{when}</td><td>{anchors}</td></tr>")
        page = (
            "<html><body><table><tr><th>Date</th><th>Circular</th></tr>"
            + "".join(rows)
            + "</table><table><tr><td>Contact us</td>"
            + '<td><a href="/contact.html">Contact</a></td></tr></table></body></html>'
        )
        return Override(body=page.encode())

    def guidelines_page(self, request: ServedRequest) -> Override:
        if refused := self._refuse(request):
            return refused
        rows = []
        for g in self.guidelines:
            label = f"{g['code']}: {html.escape(g['title'])}"
            main = (
                f'<a href="files/{g["file"]}">{label}</a>' if g["file"] else f"{label} (repealed)"
            )
            subs = "".join(
                f'<li><a href="files/{g["code"]}_{n}.pdf">{html.escape(s)}</a></li>'
                for n, s in enumerate(g["subs"])
            )
            when = f" effective from {g['effective']}" if g["effective"] else ""
            rows.append(
                f'<tr><td data-title="Guidelines">{main}{when}'
                f'<div class="subitem"><ul>{subs}</ul></div></td></tr>'
            )
        page = (
            f'<html><body><table class="guideline"><tbody>{"".join(rows)}</tbody></table>'
            "</body></html>"
        )
        return Override(body=page.encode())

    def press_page(self, request: ServedRequest) -> Override:
        if refused := self._refuse(request):
            return refused
        links = "".join(
            f'<li><a href="/en/infocenter/press_releases/{stamp}.html">'
            f"{html.escape(title)}</a></li>"
            for stamp, title in self.press
        )
        return Override(body=f"<html><body><ul>{links}</ul></body></html>".encode())
