"""Rebuild the recorded demo site (day1/, day2/) from the real HKMA samples in ../shared.

Run from the project root: `python tracker/demo_site/build.py`. See README.md beside this file
for what is real and what is derived.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from xml.etree import ElementTree as ET

HERE = Path(__file__).parent
SAMPLES = HERE.parents[1] / ".." / "shared" / "hkma-samples"
LEDGER = SAMPLES / "rss-derived-items_DA-Radar-ledger.json"
RAW_PAGE = SAMPLES / "topic-page_aml-cft-guidance-papers-circulars_raw-response_2025.html"
PAGE_PATH = (
    "eng/key-functions/banking/anti-money-laundering-and-counter-financing-of-terrorism/"
    "guidance-papers-circulars"
)
FEEDS = {
    "hkma_press_release": "press-release",
    "hkma_circulars": "circulars",
    "hkma_speeches": "speeches",
    "hkma_guidelines": "guidelines",
    "hkma_legislative_council_issues": "legislative-council-issues",
    "hkma_consultations": "consultations",
}
WINDOW = 10  # items per feed
DAY1_BEFORE = "2026-07-22"  # ledger items first seen before this form day 1
DAY2_NEW = {"press-release": 3, "circulars": 2, "speeches": 1}  # then these arrive on day 2
RENAMED_LINK = "https://brdr.hkma.gov.hk/eng/doc-ldg/current/20250428-3-EN"  # "A.I." -> "AI"


def write_feed(path: Path, name: str, items: list[dict]) -> None:
    rss = ET.Element("rss", version="2.0")
    channel = ET.SubElement(rss, "channel")
    ET.SubElement(channel, "title").text = f"HKMA - {name}"
    ET.SubElement(channel, "link").text = "https://www.hkma.gov.hk/eng/"
    ET.SubElement(channel, "description").text = f"Hong Kong Monetary Authority - {name}"
    for item in items:
        node = ET.SubElement(channel, "item")
        ET.SubElement(node, "title").text = item["title"]
        ET.SubElement(node, "link").text = item["link"]
        ET.SubElement(node, "pubDate").text = item["raw_published"]
        ET.SubElement(node, "description").text = item["summary"] or ""
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(rss).write(path, encoding="utf-8", xml_declaration=True)


def newest(items: list[dict]) -> list[dict]:
    return sorted(items, key=lambda i: i["published_at"], reverse=True)


def build_feeds(site: Path, day: int, ledger: list[dict]) -> None:
    for feed_id, name in FEEDS.items():
        items = [i for i in ledger if i["feed_id"] == feed_id]
        old = [i for i in items if i["first_seen"] < DAY1_BEFORE]
        renamed = [i for i in old if i["link"] == RENAMED_LINK]
        old = [i for i in old if i["link"] != RENAMED_LINK]
        window = newest(old)[:WINDOW]
        if day == 2:
            arrived = [i for i in items if i["first_seen"] >= DAY1_BEFORE]
            window = (newest(arrived)[: DAY2_NEW.get(name, 0)] + window)[:WINDOW]
        if (
            renamed
        ):  # the ledger holds both titles of this circular: day 1 the first, day 2 the second
            window.append(renamed[0] if day == 1 else renamed[-1])
        if name == "circulars" and day == 2:
            window.insert(1, window[0])  # the circulars feed sometimes repeats an item literally
        write_feed(site / "eng/other-information/rss" / f"rss_{name}.xml", name, window)


NEW_ROW = """<div class="elementor-element elementor-widget elementor-widget-template_filter_table_row_single">
<div class="elementor-widget-container">
<div class="content-wrapper multiple-wrapper filter-table-row" data-categories="" data-target="#regulation-guidance-press"><div class="template-table"><table><tbody><tr class="">
<td><div class="template-index"><div class="index-item">
<div class="index-icon"><span class="icon-link-text"></span></div>
<div class="index-text"><div class="filter-head filter ">
<div class="active"><a href="https://brdr.hkma.gov.hk/eng/doc-ldg/docId/20251210-1-EN" title="Guidance on combating high-end money laundering" target='_blank'>Guidance on combating high-end money laundering</a></div>
<div class="not-active">Guidance on combating high-end money laundering</div>
</div></div></div></div></td>
<td width="140px">12 Dec 2025</td>
</tr></tbody></table></div></div></div></div>
"""


def build_page(site: Path, day: int) -> None:
    html = RAW_PAGE.read_text(encoding="utf-8")
    if day == 2:
        html = re.sub(
            r"<meta name='csrf_token' content='[0-9a-f]+'>",
            "<meta name='csrf_token' content='5f0c1e2d3b4a69788796a5b4c3d2e1f00112233445566778899aa'>",
            html,
        )
        html = html.replace(
            "Last revision date : 10 April 2025", "Last revision date : 15 December 2025"
        )
        html = html.replace(
            'content="2025-04-10T00:00:00+08:00"', 'content="2025-12-15T00:00:00+08:00"'
        )
        first_row = '<div data-id="fbea56b"'
        assert first_row in html
        html = html.replace(first_row, NEW_ROW + first_row, 1)
        old_title = "Measures to protect bank customers from authorized payment scams"
        assert html.count(f'title="{old_title}"') == 1
        html = html.replace(f'title="{old_title}"', f'title="{old_title} (revised)"', 1)
        html = html.replace(f"{old_title}  (PDF File", f"{old_title} (revised)  (PDF File", 1)
        # The last row of the page (an old guidance paper) is dropped, as if archived.
        last = html.rindex('<div class="content-wrapper multiple-wrapper filter-table-row"')
        end = html.index("</tr></tbody></table></div></div>", last) + len(
            "</tr></tbody></table></div></div>"
        )
        html = html[:last] + html[end:]
    out = site / PAGE_PATH / "index.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html, encoding="utf-8")


def main() -> None:
    ledger = json.loads(LEDGER.read_text(encoding="utf-8"))["items"]
    for day in (1, 2):
        site = HERE / f"day{day}"
        shutil.rmtree(site, ignore_errors=True)
        build_feeds(site, day, ledger)
        build_page(site, day)


if __name__ == "__main__":
    main()
