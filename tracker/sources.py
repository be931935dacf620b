"""The sources the tracker watches: one descriptor each, the only place that knows a source.

A descriptor names its spider, its config defaults (the `[sources.<name>]` table) and their
checks, how its config becomes listings and spider options, whether it can read in part
(incremental) and how, whether a listing may remove documents, and how digests show it.
Adding a source is one spider (spiders/) and one descriptor here (README, "Adding a source").
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

HKMA = "https://www.hkma.gov.hk"
RSS = f"{HKMA}/eng/other-information/rss"
FEED_NAMES = (
    "press-release",
    "circulars",
    "speeches",
    "guidelines",
    "legislative-council-issues",
    "consultations",
)

Spec = dict[str, Any]  # a source's config table, defaults merged with the file's

# The regulators whose publications sources list: the code every document, change and digest
# entry carries, and the name a digest spells out.
REGULATORS = {
    "HKMA": "Hong Kong Monetary Authority",
    "SFC": "Securities and Futures Commission",
    "IA": "Insurance Authority",
}

# The sections of a digest, in the order a compliance officer files them: what binds first,
# then what is asked, then where it is listed, then the news. Each source says which of its
# documents go where (`Source.digest_group`).
DIGEST_GROUPS = {
    "instruments": "Circulars, guidelines, SPM modules and codes",
    "consultations": "Consultations",
    "pages": "Topic pages",
    "news": "Press releases, speeches and LegCo papers",
}
# Sections of what binds or is asked: a filtered subscriber gets their untagged changes too.
BINDING_GROUPS = ("instruments", "consultations")


@dataclass(frozen=True)
class Poll:
    """What the fast poll (`run --poll`) reads of a source: its cheap listings (by name; all of
    them when `listings` says nothing), with these spider options on top of the usual ones
    (`newest_page`: read one page of that many items, newest first, and no further)."""

    listings: Callable[[Spec], Collection[str]] = lambda spec: ()
    options: Callable[[Spec], dict[str, Any]] = lambda spec: {}


def _newest_page(spec: Spec) -> dict[str, Any]:
    return {"newest_page": spec["poll_page_size"]}


class SourceConfigError(ValueError):
    """A source's table is unusable; the message names the key (without the file)."""


@dataclass(frozen=True)
class Source:
    name: str  # the `[sources.<name>]` table and the `<name>:` prefix of document ids
    spider: str  # "module:Class" of its spider, loaded by the crawl process
    title: str  # how digests name it
    digest_order: int  # where digests put it (lower first)
    defaults: Spec
    listings: Callable[[Spec], dict[str, str]]  # listing name -> listing id (its real URL)
    options: Callable[[Spec, Collection[str]], dict[str, Any]]  # spec, listings read whole
    # Incremental reading: `date_group` names the spec key of a BRDR-style issue-date group
    # (its coverage decides when a gap needs a full sweep); `since` pages a dated API back
    # only to the last healthy run less an overlap.
    date_group: str | None = None
    since: Callable[[Spec, str], str] | None = None
    register: bool = False  # a healthy full sweep lists a register: what it lacks left it
    free_tables: dict[str, str] = field(default_factory=dict)  # key -> what its values are
    check: Callable[[Spec], None] = lambda spec: None
    # Which digest section (DIGEST_GROUPS) its documents go in: by one field of a document's
    # `extra` (its feed, its BRDR document type), else the default.
    digest_group: tuple[str, dict[str, str], str] = ("", {}, "news")
    # Where a digest says one of its documents is (or was) listed, from the document's
    # `extra` and the title of its listing's page (None where the listing is no page).
    listed_in: Callable[[dict[str, Any], str | None], str] = lambda extra, page: ""
    # How a listing's URL names its `digest_group` value, {} for the value ("rss_{}.xml"): a
    # feed added under a name of one's own (a Chinese circulars feed) still files as its kind.
    listing_file: str = ""
    regulator: str = "HKMA"  # a REGULATORS code: who publishes what it lists
    # What the fast poll reads of it; None: nothing cheap enough (a topic page is read whole).
    poll: Poll | None = None

    @property
    def incremental(self) -> bool:
        return self.date_group is not None or self.since is not None


def _rss_options(spec: Spec, full: Collection[str]) -> dict[str, Any]:
    return {"key_by_title": list(spec["key_by_title"])}


def _brdr_options(spec: Spec, full: Collection[str]) -> dict[str, Any]:
    return {
        "languages": list(spec["languages"]),
        "page_size": spec["page_size"],
        "max_pages": spec["max_pages"],
        "version": spec["version"],
        "date_groups": {
            listing: "ALL" if listing in full else spec["recent_date_group"]
            for listing in _brdr_listings(spec).values()
        },
    }


def _brdr_listings(spec: Spec) -> dict[str, str]:
    return {doc_type: f"{spec['url']}#{doc_type}" for doc_type in spec["doc_types"]}


def _brdr_check(spec: Spec) -> None:
    from tracker.sweep import DATE_GROUP_WINDOWS  # sweep windows know the groups' coverage

    if not spec["languages"]:
        raise SourceConfigError("languages must name at least one language")
    if spec["recent_date_group"] not in DATE_GROUP_WINDOWS:
        raise SourceConfigError(
            f"recent_date_group must be one of {', '.join(DATE_GROUP_WINDOWS)} "
            "(the issue-date groups whose coverage is known)"
        )


def _page_sections(extra: dict[str, Any], page: str | None) -> str:
    sections = ", ".join(extra.get("sections") or [])
    if not sections:  # the page itself
        return ""
    return f"{page} › {sections}" if page else sections


def _press_since(spec: Spec, last_healthy_at: str) -> str:
    overlap = timedelta(days=spec["overlap_days"])
    return (datetime.fromisoformat(last_healthy_at) - overlap).date().isoformat()


SFC = "https://www.sfc.hk/en"
SFC_API = "https://apps.sfc.hk/edistributionWeb/api"
SFC_STREAMS = {"circulars": "circular", "consultations": "consultation", "news": "news"}


def _sfc_listings(spec: Spec) -> dict[str, str]:
    streams = {name: f"{SFC_API}/{SFC_STREAMS[name]}/search" for name in spec["streams"]}
    return {**streams, **spec["pages"]}


def _sfc_since(spec: Spec, last_healthy_at: str) -> str:
    """An RSS item at or after this time is news: the last healthy run less the overlap (an
    item the SFC dates a little before it appears)."""
    overlap = timedelta(hours=spec["overlap_hours"])
    return (datetime.fromisoformat(last_healthy_at) - overlap).isoformat()


IA = "https://www.ia.org.hk/en"


def _ia_check(spec: Spec) -> None:
    if unknown := set(spec["pages"]) - {"circulars", "guidelines", "press-releases"}:
        raise SourceConfigError(
            f"pages: {sorted(unknown)[0]!r} is not circulars, guidelines or press-releases"
        )
    if "{year}" not in spec["pages"].get("circulars", "{year}"):
        raise SourceConfigError("pages.circulars must hold {year} (one page a year)")
    if spec["years"] < 1:
        raise SourceConfigError("years must be 1 or more (this year included)")


def _sfc_check(spec: Spec) -> None:
    if unknown := set(spec["streams"]) - set(SFC_STREAMS):
        raise SourceConfigError(
            f"streams: {sorted(unknown)[0]!r} is not one of {', '.join(SFC_STREAMS)}"
        )
    if unknown := set(spec["pages"]) - {"codes", "guidelines"}:
        raise SourceConfigError(f"pages: {sorted(unknown)[0]!r} is not codes or guidelines")
    if spec["years"] < 1:
        raise SourceConfigError("years must be 1 or more (this year included)")


# In the order runs crawl and report them.
SOURCES: dict[str, Source] = {
    s.name: s
    for s in (
        Source(
            name="rss",
            spider="spiders.rss:RssSpider",
            title="HKMA RSS feeds",
            digest_order=3,
            defaults={
                "enabled": True,
                "feeds": {name: f"{RSS}/rss_{name}.xml" for name in FEED_NAMES},
                # Feeds whose items share one link: key those items by link and title.
                "key_by_title": ["legislative-council-issues"],
            },
            listings=lambda spec: dict(spec["feeds"]),
            options=_rss_options,
            digest_group=(
                "feed",
                {
                    "circulars": "instruments",
                    "guidelines": "instruments",
                    "consultations": "consultations",
                },
                "news",
            ),
            free_tables={"feeds": "url"},
            listing_file="rss_{}.xml",
            listed_in=lambda extra, page: f"the HKMA RSS feed “{extra.get('feed', '?')}”",
            poll=Poll(),  # a feed is its newest items, a few kilobytes
        ),
        Source(
            name="pages",
            spider="spiders.pages:PagesSpider",
            title="HKMA topic pages",
            digest_order=1,
            defaults={
                "enabled": True,
                "urls": [
                    f"{HKMA}/eng/key-functions/banking/anti-money-laundering-and-counter-"
                    "financing-of-terrorism/guidance-papers-circulars/",
                    f"{HKMA}/eng/key-functions/banking/banking-legislation-policies-and-"
                    "standards-implementation/liquidity/",
                ],
            },
            listings=lambda spec: {url: url for url in spec["urls"]},
            options=lambda spec, full: {},
            digest_group=("", {}, "pages"),
            listed_in=_page_sections,
        ),
        Source(
            name="brdr",
            spider="spiders.brdr:BrdrSpider",
            title="Banking Regulatory Document Repository",
            digest_order=0,
            defaults={
                "enabled": True,
                "url": "https://brdr.hkma.gov.hk/restapi/doc-search",
                # Circulars, guidelines, SPM modules, consultation papers, Guide to
                # Authorization, codes of practice (../shared/hkma-sources.md; sub-codes
                # unverified).
                "doc_types": [
                    "CIR",
                    "GLI",
                    "IGL",
                    "SPM",
                    "SPM-NGL",
                    "SPM-SGL",
                    "CPR",
                    "GTA",
                    "COP",
                ],
                # The first language is the record kept; others are paired to it. The API's
                # code for Traditional Chinese is unverified, hence not on by default.
                "languages": ["eng"],
                "page_size": 100,
                # Pages read of one document type and language at the most: a register that
                # pages without end stops here, unhealthy (200 x 100 records; BRDR holds ~1,400).
                "max_pages": 200,
                "version": "CURRENT",
                # Incremental runs ask only for recent issue dates; full sweeps ask for ALL
                # (--full-sweep, the daily sweep job, and whenever a baseline is missing).
                "recent_date_group": "THIS_YEAR",
                # The fast poll reads the newest page of each document type, this long (the
                # API's smallest page is 20).
                "poll_page_size": 20,
            },
            listings=_brdr_listings,
            options=_brdr_options,
            digest_group=("doc_type", {"CPR": "consultations"}, "instruments"),
            listed_in=lambda extra, page: (
                f"the BRDR register, {extra.get('doc_type_desc') or extra.get('doc_type', '?')}"
            ),
            date_group="recent_date_group",
            register=True,
            check=_brdr_check,
            poll=Poll(options=_newest_page),
        ),
        Source(
            name="press_releases",
            spider="spiders.press_releases:PressReleasesSpider",
            title="HKMA press releases",
            digest_order=2,
            defaults={
                "enabled": True,
                "url": "https://api.hkma.gov.hk/public/press-releases?lang=en",
                "page_size": 100,
                # Incremental runs page back to this many days before the last healthy run.
                "overlap_days": 7,
                "poll_page_size": 20,  # the fast poll reads the newest page, this long
            },
            listings=lambda spec: {"press-releases": spec["url"]},
            options=lambda spec, full: {"page_size": spec["page_size"]},
            since=_press_since,
            listed_in=lambda extra, page: "the HKMA press-release API",
            poll=Poll(options=_newest_page),
        ),
        Source(
            name="sfc",
            spider="spiders.sfc:SfcSpider",
            title="SFC circulars, consultations, news, codes and guidelines",
            digest_order=4,
            regulator="SFC",
            defaults={
                # Built from public research notes, not checked against the live site
                # (../shared/hk-regulators.md §1): a shape that differs is an unhealthy
                # source, said by exit code and alert, never "no circulars".
                "enabled": True,
                "streams": list(SFC_STREAMS),
                # The cheap "anything new?" read before a stream's API search in an
                # incremental run; a feed that fails to read lets the search run.
                "probes": {
                    "circulars": f"{SFC}/RSS-Feeds/Circulars",
                    "consultations": f"{SFC}/RSS-Feeds/Consultations-and-Conclusions",
                    "news": f"{SFC}/RSS-Feeds/Press-releases",
                },
                "pages": {
                    "codes": f"{SFC}/Rules-and-standards/Codes-and-guidelines/Codes",
                    "guidelines": f"{SFC}/Rules-and-standards/Codes-and-guidelines/Guidelines",
                },
                "page_size": 100,
                "years": 3,  # a full read: this year and the two before
                "overlap_hours": 6,
            },
            listings=_sfc_listings,
            options=lambda spec, full: {
                "page_size": spec["page_size"],
                "years": spec["years"],
                "probes": dict(spec["probes"]),
            },
            since=_sfc_since,
            digest_group=(
                "feed",
                {
                    "circulars": "instruments",
                    "codes": "instruments",
                    "guidelines": "instruments",
                    "consultations": "consultations",
                },
                "news",
            ),
            free_tables={"probes": "url", "pages": "url"},
            listed_in=lambda extra, page: f"the SFC's {extra.get('feed', '?')}",
            check=_sfc_check,
            # The API streams, each behind its RSS probe: a search only when the feed has news.
            poll=Poll(listings=lambda spec: list(spec["streams"])),
        ),
        Source(
            name="ia",
            spider="spiders.ia:IaSpider",
            title="Insurance Authority circulars, guidelines and press releases",
            digest_order=5,
            regulator="IA",
            defaults={
                # Built from a public scraper's spec, not checked against the live site
                # (../shared/hk-regulators.md §2): a shape that differs, or a 403, is an
                # unhealthy source, said by exit code and alert, never "no circulars".
                "enabled": True,
                "pages": {
                    # One page a year: {year} stands for this year and those before it.
                    "circulars": f"{IA}/legislative_framework/circulars/reg_matters/"
                    "circulars_on_regulatory_matters_{year}.html",
                    "guidelines": f"{IA}/legislative_framework/guidelines.php",
                    "press-releases": f"{IA}/infocenter/press_releases.html",
                },
                "years": 2,
            },
            listings=lambda spec: dict(spec["pages"]),
            options=lambda spec, full: {"years": spec["years"]},
            digest_group=(
                "feed",
                {"circulars": "instruments", "guidelines": "instruments"},
                "news",
            ),
            free_tables={"pages": "url"},
            listed_in=lambda extra, page: f"the IA's {extra.get('feed', '?')} page",
            check=_ia_check,
        ),
    )
}
# Helper crawls the tracker runs itself, not sources of documents.
HELPER_SPIDERS = {
    "documents": "spiders.documents:DocumentsSpider",
    "brdr_lookup": "spiders.brdr:RegisterLookupSpider",
}


def source_titles() -> dict[str, str]:
    """Source name -> how digests name it, in digest order."""
    return {s.name: s.title for s in sorted(SOURCES.values(), key=lambda s: s.digest_order)}


def digest_group(source: str, extra: dict[str, Any], listing: str = "") -> str:
    """The digest section (a DIGEST_GROUPS key) of a document of `source`, listed in
    `listing`."""
    described = SOURCES.get(source)
    if described is None:
        return "news"
    key, groups, default = described.digest_group
    value = str(extra.get(key, ""))
    if value not in groups and described.listing_file:
        named = re.search(
            re.escape(described.listing_file).replace(r"\{\}", r"([\w-]+)") + "$", listing
        )
        value = named.group(1) if named else value
    return groups.get(value) or default


def listed_in(source: str, extra: dict[str, Any], page: str | None) -> str:
    """Where a document of `source` is (or was last) listed, as a digest names it."""
    described = SOURCES.get(source)
    return described.listed_in(extra, page) if described else ""


def binding(source: str, extra: dict[str, Any], listing: str = "") -> bool:
    """Whether a document of `source` is a binding instrument or a consultation (a circular,
    guideline, SPM module, code, consultation paper or conclusions): its digest section."""
    return source in SOURCES and digest_group(source, extra, listing) in BINDING_GROUPS


def _quoted(values: list[str]) -> str:
    return ", ".join(f"'{v}'" for v in values)  # values of our own descriptors, not input


def binding_sql(table: str = "d") -> str:
    """`binding` as an SQL condition on a documents row (`table`: its alias)."""
    conditions = []
    for described in SOURCES.values():
        key, groups, default = described.digest_group
        name = f"{table}.source = '{described.name}'"
        value = f"coalesce(json_extract({table}.extra, '$.{key}'), '')"
        bound = sorted(v for v, g in groups.items() if g in BINDING_GROUPS)
        others = sorted(v for v, g in groups.items() if g not in BINDING_GROUPS)
        if default in BINDING_GROUPS:
            if others:
                name += f" AND {value} NOT IN ({_quoted(others)})"
            conditions.append(f"({name})")
        elif bound:
            listed = [f"{value} IN ({_quoted(bound)})"]
            if described.listing_file:
                unnamed = f"{value} NOT IN ({_quoted(sorted(groups))})"
                files = " OR ".join(
                    f"{table}.listing LIKE '%/{described.listing_file.format(v)}'" for v in bound
                )
                listed.append(f"({unnamed} AND ({files}))")
            conditions.append(f"({name} AND ({' OR '.join(listed)}))")
    return "(" + " OR ".join(conditions or ["0"]) + ")"
