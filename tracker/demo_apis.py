"""Loopback fakes of HKMA's JSON APIs and documents, for the demo and the tests, answering
from records derived from real items (tracker/demo_site/README.md): BRDR doc-search honouring
its request body, BRDR landing pages, the Open API's press releases honouring lang, pagesize
and offset, and PDFs built here with the structure of a real circular."""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from pathlib import Path

from tracker.loopback import Override, ServedRequest

RECORDS = Path(__file__).parent / "demo_site" / "api"
LANGUAGE_SUFFIX = {"eng": "-EN", "chi": "-TC"}


def load(name: str) -> list[dict]:
    """Derived API records: brdr-records.json or press-releases.json."""
    return json.loads((RECORDS / name).read_text(encoding="utf-8"))


def as_json(data: object, status: int = 200) -> Override:
    return Override(status=status, body=json.dumps(data).encode(), content_type="application/json")


class BrdrFake:
    """POST /restapi/doc-search. `this_year` stands for today's year in `THIS_YEAR`."""

    path = "/restapi/doc-search"

    def __init__(self, records: list[dict], this_year: int = 2026) -> None:
        self.records = records
        self.this_year = this_year
        self.bodies: list[dict] = []
        self.landings: list[str] = []
        self.failing_pages: set[tuple[str, int]] = set()  # (docType, page) answered with 503
        # Lies a register may tell (fault tests): a count short by this share, a page that
        # repeats the one before it, pages that never end.
        self.count_short_by = 0.0
        self.repeat_page: int | None = None
        self.endless = False

    def __call__(self, request: ServedRequest) -> Override:
        if request.method != "POST":
            return as_json({"error": "POST only"}, 405)
        body = json.loads(request.body)
        self.bodies.append(body)
        criteria = {c["fieldCode"]: c["valueList"] for c in body["docSrchCriteriaDtoList"]}
        if not {"docType", "version", "language", "issueDateGrp"} <= criteria.keys():
            return as_json({"error": "missing criteria"}, 400)
        suffix = LANGUAGE_SUFFIX[body["langCode"]]
        selected = [
            r
            for r in self.records
            if r["docTypeCode"] in criteria["docType"]
            and r["docId"].endswith(suffix)
            and (criteria["version"] != ["CURRENT"] or r["versionCode"] == "Current")
            and (
                criteria["issueDateGrp"] != ["THIS_YEAR"]
                or r["issueDateStr"].endswith(str(self.this_year))
            )
        ]
        selected.sort(key=lambda r: r["issueDate"], reverse=True)
        page, size = int(body["pageNumber"]), int(body["pageSize"])
        if (criteria["docType"][0], page) in self.failing_pages:
            return as_json({"error": "Service Unavailable"}, 503)
        shown = page - 1 if page == self.repeat_page else page
        results = selected[(shown - 1) * size : shown * size]
        if self.endless:
            results = [
                {**r, "docId": f"{page:05d}{n:03d}-{page}-{suffix}"}
                for n, r in enumerate((selected * size)[:size])
            ]
        return as_json(
            {
                "langCode": body["langCode"],
                "pageNumber": page,
                "pageSize": size,
                "totalRecordNumber": int(len(selected) * (1 - self.count_short_by)),
                "sortBy": body["sortBy"],
                "resultList": results,
            }
        )

    def landing(self, request: ServedRequest) -> Override:
        """GET /eng/doc-ldg/docId/<docId>: a landing page in the layout R1 describes (see
        shared/hkma-sources.md §2), one `.relp-item` per document that names this one in its
        supersededDocList or versionHistoryDocList, or that this one names; 404 when unknown."""
        if not request.path.startswith("/eng/doc-ldg/docId/"):
            return Override(status=404, body=b"Not Found", content_type="text/plain")
        self.landings.append(request.path)
        doc_id = request.path.rstrip("/").rsplit("/", 1)[-1]
        own = next((r for r in self.records if r["docId"] == doc_id), None)
        if own is None:
            return Override(status=404, body=b"Not Found", content_type="text/plain")
        items = []
        for other in self.records:
            for field, relation in (
                ("supersededDocList", "Superseded Doc"),
                ("versionHistoryDocList", "Version Hist Doc"),
            ):
                if other is not own and (
                    doc_id in _ids(other.get(field)) or other["docId"] in _ids(own.get(field))
                ):
                    items.append(
                        f'<div class="relp-item" relp-info="{relation}">'
                        f'<span class="document-type">{html.escape(other["docTypeDesc"])}</span>'
                        f'<span class="version">{other["versionCode"]}</span>'
                        f'<span class="issue-date">{other["issueDateStr"]}</span>'
                        f'<span class="document-url"><a href="/eng/doc-ldg/docId/{other["docId"]}">'
                        f"{html.escape(other['docLongTitle'])}</a></span></div>"
                    )
        pdf = f"/eng/doc-ldg/docId/getPdf/{doc_id}/{doc_id}.pdf"
        page = (
            f"<html><body><h1>{html.escape(own['docLongTitle'])}</h1>"
            f'<div class="document-file-info"><a href="{pdf}">PDF</a></div>'
            f"{''.join(items)}</body></html>"
        )
        return Override(body=page.encode())

    def pages(self, doc_type: str) -> list[tuple[str, int]]:
        """(language, page) of every request made for one document type."""
        return [
            (b["langCode"], int(b["pageNumber"]))
            for b in self.bodies
            if b["docSrchCriteriaDtoList"][0]["valueList"] == [doc_type]
        ]


def _ids(entries: list | None) -> set[str]:
    return {e["docId"] if isinstance(e, dict) else e for e in entries or []}


class PressReleasesFake:
    """GET /public/press-releases?lang=en&pagesize=N&offset=K, newest first."""

    path = "/public/press-releases"

    def __init__(self, records: list[dict]) -> None:
        self.records = records
        self.offsets: list[int] = []
        self.error: str | None = None

    def __call__(self, request: ServedRequest) -> Override:
        if self.error:
            header = {"success": False, "err_code": "9999", "err_msg": self.error}
            return as_json({"header": header, "result": {"datasize": 0, "records": []}})
        lang = request.query.get("lang", [""])[0]
        size = int(request.query.get("pagesize", ["100"])[0])
        offset = int(request.query.get("offset", ["0"])[0])
        self.offsets.append(offset)
        records = self.records[offset : offset + size] if lang == "en" else []
        header = {"success": True, "err_code": "0000", "err_msg": "No error found"}
        return as_json({"header": header, "result": {"datasize": len(records), "records": records}})


# A document's own lines by its path (None: the shared `CIRCULAR` text).
Texts = Callable[[str], list[str] | None]


class DocumentsFake:
    """Any document a listing links: a PDF for `.pdf` paths, a BRDR landing page (linking its
    PDF) for `/doc-ldg/` pages, an HKMA-style HTML page otherwise. Texts are `texts(path)`
    where it gives them (the demo: each document's own, from its title), else the circular
    structure of `CIRCULAR` naming the path, so each document has text of its own."""

    def __init__(self, texts: Texts | None = None) -> None:
        self.texts = texts

    def _lines(self, path: str) -> tuple[str, list[str]]:
        own = self.texts(path) if self.texts else None
        if own:
            return own[0], own
        return f"Page {path}", [f"Document {path}", *CIRCULAR]

    def __call__(self, request: ServedRequest) -> Override:
        path = request.path
        heading, lines = self._lines(path)
        if path.endswith(".pdf"):
            return Override(body=make_pdf(lines), content_type="application/pdf")
        if "/doc-ldg/" in path:
            doc_id = path.rstrip("/").rsplit("/", 1)[-1]
            link = f"/eng/doc-ldg/docId/getPdf/{doc_id}/{doc_id}.pdf"
            landing = f'<div class="document-file-info"><a href="{link}">PDF</a></div>'
            return Override(body=f"<html><body>{landing}</body></html>".encode())
        paragraphs = "".join(f"<p>{html.escape(line)}</p>" for line in lines[1:])
        page = (
            "<html><body><!--NO INDEX START--><nav>Menu</nav><!--NO INDEX END-->"
            f'<div class="top-background-content"><h1>{html.escape(heading)}</h1>'
            f"{paragraphs}</div></body></html>"
        )
        return Override(body=page.encode())


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def make_pdf(
    lines: list[str], producer: str = "hkma-tracker tests", spacing: int = 14, pages: int = 1
) -> bytes:
    """A valid PDF whose extracted text is `lines` (on each of `pages` pages, which share one
    content stream: a small file that takes long to read). Another `producer` or `spacing`
    gives other bytes with the same text: a re-export."""
    stream = f"BT /F1 10 Tf {spacing} TL 50 800 Td\n"
    stream += "".join(f"({_escape(line)}) Tj T*\n" for line in lines) + "ET"
    page = (
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
        "/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>"
    )
    kids = " ".join(["3 0 R"] + [f"{7 + n} 0 R" for n in range(pages - 1)])
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {pages} >>",
        page,
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        f"<< /Length {len(stream.encode('latin-1'))} >>\nstream\n{stream}\nendstream",
        f"<< /Producer ({_escape(producer)}) >>",
        *[page] * (pages - 1),
    ]
    out = b"%PDF-1.4\n"
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{offset:010d} 00000 n \n" for offset in offsets).encode()
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R /Info 6 0 R >>\n"
        f"startxref\n{xref}\n%%EOF\n"
    ).encode()
    return out


# A circular as HKMA writes them (structure of the 2019 circular quoted in
# ../shared/hkma-sources.md §5: reference numbers, addressee line, effective-date wording).
CIRCULAR = [
    "Our Ref.: B1/15C B9/29C",
    "12 December 2025",
    "The Chief Executive",
    "All authorized institutions",
    "Dear Sir / Madam,",
    "Guidance on combating high-end money laundering",
    "I am writing to share the guidance on combating high-end money laundering.",
    "The guidance supersedes the circular of 5 March 2019.",
    "The revised requirements will take effect on 1 March 2026.",
    "Authorized institutions should review SPM module CR-G-7 and IC-6 accordingly.",
    "Yours faithfully,",
    "Deputy Chief Executive",
]
