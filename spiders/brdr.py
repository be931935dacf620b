"""The Banking Regulatory Document Repository: `POST /restapi/doc-search` on brdr.hkma.gov.hk.

One listing per document type (CIR, GLI, SPM, CPR, COP, GTA, ...). Each listing pages through
every result of each configured language before yielding anything, so English and Chinese
records of one document are paired into one document, and supersessions named in one record
can mark another.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import scrapy
from scrapy.http import Response, TextResponse
from twisted.python.failure import Failure

from spiders.base import HkmaSpider, ListingError, ScheduledArguments, failure_reason
from spiders.items import DocumentItem, RegisterLookup
from spiders.normalize import BRDR, HONG_KONG, base_id, clean_id, clean_text, parse_listing_date

_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
_TAG = re.compile(r"<[^>]+>")
_DOC_ID = re.compile(r"\b(\d{8}-\d+-[A-Z]{2})\b")
# What a landing page shows of related documents (R1 in ../shared/hkma-sources.md, not checked
# without JavaScript): one element per related document, its relation in `relp-info`.
RELATED_ITEM = ".relp-item[relp-info]"


def search_body(
    doc_type: str, page: int, page_size: int, lang: str, date_group: str, version: str
) -> dict[str, Any]:
    """The doc-search request body, as the BRDR web client sends it."""
    return {
        "langCode": lang,
        "pageNumber": str(page),
        "pageSize": str(page_size),
        "sortBy": "ISSUE_DATE_DESCENDING",
        "docSrchCriteriaDtoList": [
            {"fieldCode": "docType", "valueList": [doc_type]},
            {"fieldCode": "version", "valueList": [version]},
            {"fieldCode": "language", "valueList": [lang]},
            {"fieldCode": "issueDateGrp", "valueList": [date_group]},
        ],
    }


def strip_markup(title: str | None) -> str:
    """`docLongTitle` without its `<br/>` and other markup, entities decoded."""
    return clean_text(html.unescape(_TAG.sub("", _BREAK.sub(" ", title or ""))))


def hong_kong_date(record: dict[str, Any]) -> str | None:
    """The issue date as HKMA states it.

    `issueDateStr` ("28 Apr 2025") is the Hong Kong date. `issueDate` is Hong Kong midnight
    expressed in UTC (16:00Z the day before), as epoch milliseconds or an ISO string: it is
    converted to Hong Kong time, never cut at its own date.
    """
    if parsed := parse_listing_date(record.get("issueDateStr")):
        return parsed.isoformat()
    value = record.get("issueDate")
    moment = None
    if isinstance(value, int | float):
        moment = datetime.fromtimestamp(value / 1000, HONG_KONG)
    elif isinstance(value, str) and value:
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        if moment.tzinfo is None:  # an instant without zone: the API speaks UTC
            moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(HONG_KONG).date().isoformat() if moment else None


def _date_field(record: dict[str, Any], name: str) -> str | None:
    return hong_kong_date({"issueDate": record.get(name)}) if record.get(name) else None


def _doc_ids(entries: Any) -> list[str]:
    """Document ids named by a relationship list; its inner fields are not documented, so
    plain ids and objects with a `docId` are both accepted."""
    ids = []
    for entry in entries or []:
        if isinstance(entry, str):
            ids.append(clean_id(entry))
        elif isinstance(entry, dict) and entry.get("docId"):
            ids.append(clean_id(entry["docId"]))
    return sorted(set(filter(None, ids)))


def document_key(record: dict[str, Any]) -> str:
    """What stays the same across versions: the SPM code, the guideline number, else the id."""
    if record.get("spmCode"):
        return f"spm:{clean_text(record['spmCode'])}"
    if record.get("guidelineNo"):
        return f"guideline:{clean_text(str(record['guidelineNo']))}"
    return f"doc:{base_id(clean_id(record['docId']))}"


def document_items(
    listing: str, english: list[dict[str, Any]], chinese: list[dict[str, Any]]
) -> list[DocumentItem]:
    """One item per document, newest version first wins, Chinese record attached.

    What a record says of itself is kept (its supersession date, its version code) along with
    the documents it names (`supersedes`, `version_history`): the tracker, which holds the
    documents a query does not return, decides what those names mean for them.
    """
    chinese_by_base = {base_id(clean_id(r["docId"])): r for r in chinese if r.get("docId")}
    items: dict[str, DocumentItem] = {}
    for record in english:
        doc_id = clean_id(record.get("docId") or "")
        if not doc_id:
            continue
        key = document_key(record)
        if key in items:  # several versions listed: results are newest first, keep that one
            continue
        supersession = _date_field(record, "supersessionDate")
        version_status = clean_text(str(record.get("versionCode") or ""))
        extra: dict[str, Any] = {
            "doc_id": doc_id,
            "version": base_id(doc_id),
            "version_status": version_status,
            "doc_type": record.get("docTypeCode"),
            "doc_type_desc": clean_text(record.get("docTypeDesc")),
            "spm_code": record.get("spmCode") or None,
            "guideline_no": record.get("guidelineNo") or None,
            "topics": sorted(
                {
                    clean_text(t.get("topicSubtopicDesc") or t.get("topicDesc"))
                    for t in record.get("docTopicSubtopicList") or []
                    if isinstance(t, dict) and (t.get("topicSubtopicDesc") or t.get("topicDesc"))
                }
            ),
            "supersession_date": supersession,
            "supersedes": _doc_ids(record.get("supersededDocList")),
            "version_history": [
                v for v in _doc_ids(record.get("versionHistoryDocList")) if v != doc_id
            ],
            "related": _doc_ids(record.get("directlyRelatedDocList")),
            "status": "superseded"
            if supersession or version_status.lower() not in ("", "current")
            else "current",
            "document_url": f"{BRDR}/eng/doc-ldg/docId/getPdf/{doc_id}/{doc_id}.pdf",
        }
        if record.get("consultStsCode"):
            extra["consultation"] = {
                "status": record.get("consultStsCode"),
                "opens": _date_field(record, "consultOpenDate"),
                "closes": _date_field(record, "consultClsDate"),
            }
        twin = chinese_by_base.get(base_id(doc_id))
        if twin is not None:
            extra["chinese"] = {
                "doc_id": clean_id(twin["docId"]),
                "title": strip_markup(twin.get("docLongTitle")),
            }
        items[key] = DocumentItem(
            source="brdr",
            listing=listing,
            key=key,
            title=strip_markup(record.get("docLongTitle")),
            url=f"{BRDR}/eng/doc-ldg/docId/{doc_id}",
            date=hong_kong_date(record),
            extra={k: v for k, v in extra.items() if v not in (None, [], "")},
        )
    return list(items.values())


# Pages read of one listing and language at the most: at 100 a page, 20,000 records (BRDR
# holds about 1,400 current ones); a pager that never ends stops here, unhealthy.
MAX_PAGES = 200


def _page_name(page: int, lang: str, first_lang: str) -> dict[str, str]:
    """How a failed fetch names this page of a document type's listing: nothing for the
    first page in the first language (the listing says it), else the page and language."""
    parts = [f"page {page}"] if page > 1 else []
    parts += [] if lang == first_lang else [f"{lang} records"]
    return {"page_name": ", ".join(parts)} if parts else {}


class BrdrSpider(HkmaSpider):
    """Pages through doc-search for each document type and language.

    Options: `page_size`, `languages` (first is the primary, e.g. ["eng", "chi"]), `version`
    ("CURRENT"), `date_groups` (listing -> "ALL" for a full sweep, e.g. "THIS_YEAR" for an
    incremental read; `date_group` for listings not named, default "ALL"), `newest_page` (a
    page size: read the first page of each language, newest issue first, and no further: the
    fast poll's slice, which says nothing of the rest).
    BRDR never 'removes' a document: a document leaving the current set was superseded or
    withdrawn, which the tracker looks up.
    """

    name = "brdr"
    removals_allowed = False

    def __init__(self, listings: dict[str, str], options: dict[str, Any] | None = None) -> None:
        super().__init__(listings, options)
        self.languages: list[str] = list(self.options.get("languages", ["eng"]))
        self.newest_page = int(self.options.get("newest_page") or 0)
        self.page_size = self.newest_page or int(self.options.get("page_size", 100))
        self.max_pages = int(self.options.get("max_pages", MAX_PAGES))
        self.version = str(self.options.get("version", "CURRENT"))
        default = str(self.options.get("date_group", "ALL"))
        self.date_groups = {
            listing: str(self.options.get("date_groups", {}).get(listing, default))
            for listing in self.listings.values()
        }
        self.records: dict[str, dict[str, list[dict[str, Any]]]] = {}

    def reads_whole(self, listing: str) -> bool:
        # Incremental queries return a varying slice: their sizes say nothing about health.
        return self.date_groups.get(listing) == "ALL" and not self.newest_page

    def search(self, name: str, listing: str, lang: str, page: int) -> scrapy.Request:
        group = self.date_groups[listing]
        body = search_body(name, page, self.page_size, lang, group, self.version)
        return self.listing_request(
            name,
            listing,
            listing.split("#", 1)[0],
            method="POST",
            body=json.dumps(body),
            headers={
                "Content-Type": "application/json; charset=utf-8",
                "X-Requested-With": "XMLHttpRequest",
            },
            meta={"lang": lang, "page": page, **_page_name(page, lang, self.languages[0])},
        )

    def first_request(self, name: str, listing: str) -> scrapy.Request:
        return self.search(name, listing, self.languages[0], 1)

    def extract(self, response: Response, name: str) -> Iterable[DocumentItem | scrapy.Request]:
        listing, lang, page = response.meta["listing"], response.meta["lang"], response.meta["page"]
        try:
            data = json.loads(response.text)
        except ValueError as error:
            raise ListingError(f"not JSON: {error}") from error
        if not isinstance(data, dict) or not isinstance(data.get("resultList"), list):
            raise ListingError("no resultList in the doc-search response")
        results = [r for r in data["resultList"] if isinstance(r, dict)]
        total = int(data.get("totalRecordNumber") or 0)
        collected = self.records.setdefault(listing, {}).setdefault(lang, [])
        seen = {str(r.get("docId")) for r in collected}
        if repeated := next(
            (str(r["docId"]) for r in results if str(r.get("docId")) in seen), None
        ):
            raise ListingError(f"page {page} of {lang} repeats a record read before ({repeated})")
        collected.extend(results)
        # Read until a page comes back short, whatever the count says; then the count must
        # agree with what was read. A register that lies is unhealthy, and marks nothing. (The
        # poll's newest page neither pages on nor has a count to agree with.)
        if not self.newest_page:
            if len(results) >= self.page_size:
                if page >= self.max_pages:
                    raise ListingError(f"{lang}: still full pages after {page} pages (page cap)")
                return [self.search(name, listing, lang, page + 1)]
            if "totalRecordNumber" in data and total != len(collected):
                raise ListingError(
                    f"{lang}: read {len(collected)} records, the register announced {total}"
                )
        next_lang = self.languages.index(lang) + 1
        if next_lang < len(self.languages):
            return [self.search(name, listing, self.languages[next_lang], 1)]
        by_lang = self.records.pop(listing)
        english = by_lang.get(self.languages[0], [])
        chinese = [r for other in self.languages[1:] for r in by_lang.get(other, [])]
        if self.newest_page and chinese:
            # A twin off the other language's newest page is not a twin gone: such a record
            # waits for the next full read rather than look changed.
            twins = {base_id(clean_id(r["docId"])) for r in chinese if r.get("docId")}
            english = [r for r in english if base_id(clean_id(r.get("docId") or "")) in twins]
        return document_items(listing, english, chinese)


def related_documents(response: TextResponse) -> list[dict[str, Any]]:
    """The related documents a BRDR landing page lists, with what it says of each."""
    related = []
    for element in response.css(RELATED_ITEM):
        link = element.css(".document-url a")
        href = link.attrib.get("href", "") if link else ""
        found = _DOC_ID.search(href) or _DOC_ID.search(" ".join(element.css("::text").getall()))
        if not found:
            continue
        issued = parse_listing_date(
            clean_text(" ".join(element.css(".issue-date ::text").getall()))
        )
        related.append(
            {
                "relation": clean_text(element.attrib.get("relp-info")),
                "doc_id": found.group(1),
                "title": clean_text(" ".join(link.css("::text").getall())) if link else "",
                "issue_date": issued.isoformat() if issued else None,
                "version": clean_text(" ".join(element.css(".version ::text").getall())),
            }
        )
    return related


class RegisterLookupSpider(ScheduledArguments, scrapy.Spider):
    """Reads the landing pages of BRDR documents that left the current register.

    Options: `documents` [{id, url}], the tracker's document id and the landing page URL.
    """

    name = "brdr_lookup"

    def __init__(self, listings: dict[str, str], options: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.documents: list[dict[str, str]] = (options or {}).get("documents", [])

    async def start(self) -> Any:
        for doc in self.documents:
            yield scrapy.Request(
                doc["url"],
                callback=self.parse_landing,
                errback=self.lookup_failed,
                meta={"document_id": doc["id"], "asked": doc["url"]},
                dont_filter=True,
            )

    def parse_landing(self, response: Response) -> Iterable[RegisterLookup]:
        doc_id, asked = response.meta["document_id"], response.meta["asked"]
        if not isinstance(response, TextResponse) or not response.body.strip():
            yield RegisterLookup(doc_id, asked, False, "not an HTML page")
            return
        yield RegisterLookup(doc_id, asked, True, related=related_documents(response))

    def lookup_failed(self, failure: Failure) -> Iterable[RegisterLookup]:
        request = failure.request  # type: ignore[attr-defined]
        reason, _ = failure_reason(failure, request.meta.get("download_maxsize"))
        yield RegisterLookup(request.meta["document_id"], request.meta["asked"], False, reason)
