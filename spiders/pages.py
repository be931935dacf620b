"""Watched HKMA topic pages: the page itself and every row of its document tables.

Handles both layouts of the same page: as served (each row in its own
`div.filter-table-row[data-target]`, tables empty) and after the site's JavaScript moved the
rows into the tables. Per-response noise (csrf_token, NO INDEX blocks with navigation and
menus, scripts) is kept out of everything that is tracked.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from bs4 import BeautifulSoup, Tag
from scrapy.http import Response

from spiders.base import HkmaSpider, ListingError
from spiders.items import DocumentItem
from spiders.normalize import (
    clean_text,
    clean_title,
    normalize_url,
    parse_listing_date,
    pdf_size_note,
)

_NO_INDEX = re.compile(r"<!--\s*NO INDEX START\s*-->.*?<!--\s*NO INDEX END\s*-->", re.DOTALL)
# The revision-date footer sits inside a NO INDEX block, so it is read from the raw HTML
# before those blocks are dropped.
_REVISION = re.compile(
    r'class="revision-date"[^>]*>\s*Last revision date\s*:\s*([^<]+)<', re.IGNORECASE
)
_ATTACHMENT_LABEL_TAIL = re.compile(r"[\s:\-–]+$")
# Where the main content lives on HKMA's templates, most specific first.
_CONTENT_SELECTORS = ("div.top-background-content", "main", "div#content", "body")
_NOISE_SELECTORS = "script, style, noscript, iframe, form, div.filter-table, div.filter-table-row"


def _revision_date(html: str) -> str | None:
    match = _REVISION.search(html)
    parsed = parse_listing_date(match.group(1)) if match else None
    return parsed.isoformat() if parsed else None


def _table_headings(soup: BeautifulSoup) -> dict[str, str]:
    """Document-table id -> its heading ("Circulars", "Guidance Papers")."""
    headings = {}
    for table in soup.select("div.filter-table[id]"):
        heading = table.select_one(".heading")
        headings[str(table["id"])] = clean_text(heading.get_text(" ")) if heading else ""
    return headings


def _section_of(row: Tag, headings: dict[str, str]) -> str:
    """The heading of the table a row belongs to, in either layout."""
    wrapper = row.find_parent("div", attrs={"data-target": True})
    if wrapper is None:  # browser layout: the row sits inside its table
        wrapper = row.find_parent("div", class_="filter-table")
        table_id = str(wrapper.get("id", "")) if wrapper is not None else ""
    else:  # as served: the row names its table
        table_id = str(wrapper["data-target"]).lstrip("#")
    return headings.get(table_id, table_id)


def _categories(row: Tag) -> list[str]:
    """Topic tags of a row: `filter-*` classes of the row and its wrapper's data-categories."""
    tokens = list(row.get("class") or [])
    wrapper = row.find_parent("div", attrs={"data-categories": True})
    if wrapper is not None:
        tokens += str(wrapper["data-categories"]).split()
    return sorted({t.removeprefix("filter-") for t in tokens if t.startswith("filter-")})


def _link_title(anchor: Tag) -> str:
    return clean_title(str(anchor.get("title") or "") or anchor.get_text(" "))


def parse_row(row: Tag, page_url: str) -> dict[str, Any] | None:
    """Title, link, date and attachments of one document-table row; None if it has no link."""
    anchor = row.select_one("div.filter-head div.active a[href]")
    if anchor is None:
        return None
    attachments = []
    for block in row.select("div.index-text > div.filter"):
        if "filter-head" in (block.get("class") or []):
            continue
        for link in block.find_all("a", href=True):
            prefix = "".join(s for s in link.find_previous_siblings(string=True))
            attachments.append(
                {
                    "label": _ATTACHMENT_LABEL_TAIL.sub("", clean_text(prefix)),
                    "title": _link_title(link),
                    "url": normalize_url(str(link["href"]), page_url),
                }
            )
    date_cell = row.select_one('td[width="140px"]') or row.find_all("td")[-1]
    listed = parse_listing_date(date_cell.get_text(" ")) if date_cell else None
    return {
        "title": _link_title(anchor),
        "url": normalize_url(str(anchor["href"]), page_url),
        "date": listed.isoformat() if listed else None,
        "attachments": attachments,
        "pdf_size": pdf_size_note(anchor.get_text(" ")),
    }


def main_text(soup: BeautifulSoup) -> tuple[str, str]:
    """Heading and main text of an HKMA page parsed without its NO INDEX blocks.

    Scripts, forms and document tables are dropped (the tables' rows are documents of their
    own). Changes `soup`: call it after reading anything else from it.
    """
    content = next(
        (n for sel in _CONTENT_SELECTORS if (n := soup.select_one(sel)) is not None), None
    )
    if content is None:
        raise ListingError("no page content found (no <body>)")
    for noise in content.select(_NOISE_SELECTORS):
        noise.decompose()
    heading = soup.select_one("h1") or soup.find("title")
    title = clean_text(heading.get_text(" ")) if heading else ""
    return title, clean_text(content.get_text(" "))


def html_text(body: str) -> tuple[str, str]:
    """Heading and main text of an HKMA HTML page (a press release, an old circular)."""
    return main_text(BeautifulSoup(_NO_INDEX.sub(" ", body), "lxml"))


def parse_topic_page(body: str, page_url: str) -> list[DocumentItem]:
    """The page as one document plus one document per distinct row link."""
    revision = _revision_date(body)
    soup = BeautifulSoup(_NO_INDEX.sub(" ", body), "lxml")
    headings = _table_headings(soup)

    rows: dict[str, dict[str, Any]] = {}
    for tr in soup.select("div.template-table tbody tr"):
        row = parse_row(tr, page_url)
        if row is None:
            continue
        section, categories = _section_of(tr, headings), _categories(tr)
        seen = rows.get(row["url"])
        if seen is None:
            rows[row["url"]] = {**row, "sections": [section], "categories": categories}
        else:  # one PDF can be listed in two tables: one document, both sections
            seen["sections"] = sorted({*seen["sections"], section})
            seen["categories"] = sorted({*seen["categories"], *categories})

    title, text = main_text(soup)
    page = DocumentItem(
        source="pages",
        listing=page_url,
        key=page_url,
        title=title or page_url,
        url=page_url,
        date=revision,
        text=text,
        extra={"kind": "topic-page"},
    )
    documents = [page]
    for url, row in rows.items():
        documents.append(
            DocumentItem(
                source="pages",
                listing=page_url,
                key=f"{page_url}|{url}",
                title=row["title"],
                url=url,
                date=row["date"],
                extra={
                    "kind": "listed-document",
                    "page": page_url,
                    "sections": row["sections"],
                    "categories": row["categories"],
                    "attachments": row["attachments"],
                    "document_url": url,
                    **({"pdf_size": row["pdf_size"]} if row["pdf_size"] else {}),
                },
            )
        )
    return documents


class PagesSpider(HkmaSpider):
    """One request per watched topic page; rows missing from a healthy page are removals."""

    name = "pages"

    def extract(self, response: Response, name: str) -> Iterable[DocumentItem]:
        content_type = (response.headers.get(b"Content-Type") or b"text/html").decode("latin-1")
        if not content_type.startswith("text/html"):
            raise ListingError(f"not an HTML page (Content-Type {content_type})")
        return parse_topic_page(response.text, response.meta["listing"])
