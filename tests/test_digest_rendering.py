"""The HTML digest as a phone shows it: rendered by headless Chromium, checked on the pixels.

Chromium comes from Debian's `chromium` package, installed by `make browser` (which CI runs
first). Without it the test is skipped saying so, except under CI, where it fails.
"""

from __future__ import annotations

import html
import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import headless_chromium
from PIL import Image

from alerts.digest import Digest

NEW_BADGE = (0x2E, 0x7D, 0x32)  # the inline style of a NEW badge
CHANGED_BADGE = (0xB2, 0x6A, 0x00)


def screenshot(
    chromium: str, html: Path, png: Path, width: int = 390, height: int = 844
) -> Image.Image:
    headless_chromium(
        chromium,
        html,
        png.parent / "profile",
        "--hide-scrollbars",
        f"--window-size={width},{height}",
        f"--screenshot={png}",
    )
    return Image.open(png).convert("RGB")


def change(change_id, kind, title, **fields):
    return {
        "id": change_id,
        "kind": kind,
        "source": "pages",
        "title": title,
        "url": "https://www.hkma.gov.hk/media/eng/doc/key-information/guidelines-and-circular/2024/20241220e1.pdf",
        "date": "2024-12-20",
        "fields": fields.get("fields", []),
        "diff": fields.get("diff", ""),
        "detected_at": "2026-11-22T03:00:00+00:00",
        "functions": ["AML/CFT"],
        "products": ["Banking"],
    }


DIGEST = Digest.of_changes(
    datetime(2026, 11, 22, tzinfo=UTC),
    [
        change(1, "new", "Guidance on combating high-end money laundering"),
        change(
            2,
            "changed",
            "Measures to protect bank customers from authorized payment scams (revised)",
            fields=["title"],
            diff="--- title (before)\n+++ title (now)\n-Measures to protect bank customers\n+Measures to protect bank customers (revised)",
        ),
        change(3, "new", "打擊洗錢及恐怖分子資金籌集指引"),
    ],
)


def pixels(image: Image.Image) -> list[tuple[int, ...]]:
    data = image.tobytes()  # RGB, row by row
    return [tuple(data[i : i + 3]) for i in range(0, len(data), 3)]


def colour_share(image: Image.Image, colour: tuple[int, int, int]) -> float:
    every = pixels(image)
    close = sum(1 for p in every if all(abs(a - b) < 12 for a, b in zip(p, colour, strict=True)))
    return close / len(every)


def test_the_digest_renders_on_a_phone_screen(chromium, tmp_path):
    html = tmp_path / "digest.html"
    html.write_text(DIGEST.render_html(), encoding="utf-8")
    image = screenshot(chromium, html, tmp_path / "digest.png")
    assert image.size == (390, 844)
    inked = sum(1 for p in pixels(image) if sum(p) < 600) / (390 * 844)
    assert inked > 0.01, "the page is (nearly) blank"
    # Inline styles survived: the NEW and CHANGED badges are drawn in their colours.
    assert colour_share(image, NEW_BADGE) > 0.0005
    assert colour_share(image, CHANGED_BADGE) > 0.0002
    # Nothing is wider than the phone: the right-hand strip is background.
    strip = image.crop((380, 0, 390, 844))
    assert all(sum(p) > 740 for p in pixels(strip)), "content overflows the phone width"


def test_a_broken_layout_fails_the_check(chromium, tmp_path):
    """The checks above can fail: a page without the inline styles has no coloured badges."""
    html = tmp_path / "broken.html"
    html.write_text(
        DIGEST.render_html().replace("background:#2e7d32", "background:#ffffff"), encoding="utf-8"
    )
    image = screenshot(chromium, html, tmp_path / "broken.png")
    assert colour_share(image, NEW_BADGE) < 0.0005


# Run in the page after layout: every word outside a URL that its line box splits (a word
# whose characters sit on more than one line), and where the summary ends, into the title.
LAYOUT_PROBE = """<script>
const broken = [];
const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
for (let node = walker.nextNode(); node; node = walker.nextNode()) {
  if (node.parentElement.closest('[style*="overflow-wrap:anywhere"]')) continue;
  // A date, or a word (a hyphenated one may wrap at its hyphen, as in print).
  for (const match of node.textContent.matchAll(/\\d{4}-\\d{2}-\\d{2}|[^\\s-]+/g)) {
    const range = document.createRange();
    range.setStart(node, match.index);
    range.setEnd(node, match.index + match[0].length);
    const tops = new Set([...range.getClientRects()].map(r => Math.round(r.top)));
    if (tops.size > 1) broken.push(match[0]);
  }
}
const summary = document.getElementById('summary').getBoundingClientRect().bottom;
document.title = JSON.stringify({broken: broken, summaryBottom: summary});
</script>"""


def layout(chromium: str, html_text: str, folder: Path, width: int) -> dict:
    page = folder / f"layout-{width}.html"
    page.write_text(html_text.replace("</body>", LAYOUT_PROBE + "</body>"), encoding="utf-8")
    dom = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            f"--user-data-dir={folder / f'profile-{width}'}",
            f"--window-size={width},844",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    title = dom.split("<title>", 1)[1].split("</title>", 1)[0]
    return json.loads(html.unescape(title))


LONG = Digest.of_changes(
    datetime(2026, 11, 22, tzinfo=UTC),
    [
        {
            **change(
                7,
                "removed",
                "Guidance Paper on Anti-Money Laundering Controls over Tax "
                "Evasion (March 2015) dated 2015-03-31 supersedes 2012-07-01",
            ),
            "url": "https://www.hkma.gov.hk/media/eng/doc/key-functions/banking-stability/aml-cft/"
            "Gudiance_Paper_Tax_20150331_with_a_very_long_file_name_that_cannot_fit.pdf",
            "date": "2015-03-31",
        },
        *(
            change(n, "new", f"Circular {n} on authorized payment scams, 2026-12-0{n}")
            for n in (1, 2)
        ),
    ],
)


@pytest.mark.parametrize("width", [390, 1280])
def test_no_word_or_date_is_split_across_lines_and_the_summary_is_above_the_fold(
    chromium, tmp_path, width
):
    found = layout(chromium, LONG.render_html(), tmp_path, width)
    assert found["broken"] == []
    assert found["summaryBottom"] <= 844  # a phone shows it without scrolling


def test_the_layout_check_sees_a_split_word(chromium, tmp_path):
    """It can fail: with the old `word-break: break-all`, words and dates break at 390 px."""
    broken = LONG.render_html().replace("overflow-wrap:anywhere;", "word-break:break-all;")
    broken = broken.replace(
        '<div style="font-size:12px;color:#555555;">Dated',
        '<div style="font-size:12px;color:#555555;word-break:break-all;">Dated',
    )
    assert layout(chromium, broken, tmp_path, 390)["broken"]
