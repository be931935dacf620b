"""The HTML digest as a phone shows it: rendered by headless Chromium, checked on the pixels.

Chromium comes from Debian's `chromium` package, installed by `make browser` (which CI runs
first). Without it the test is skipped saying so, except under CI, where it fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from PIL import Image

from alerts.digest import Digest

NEW_BADGE = (0x2E, 0x7D, 0x32)  # the inline style of a NEW badge
CHANGED_BADGE = (0xB2, 0x6A, 0x00)


@pytest.fixture(scope="session")
def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    why = "Chromium is not installed: `make browser` installs Debian's chromium (root, apt)"
    if os.environ.get("HKMA_TRACKER_CI"):
        pytest.fail(why)  # CI installs it first: missing there is a broken setup, not a skip
    pytest.skip(why)


def screenshot(
    chromium: str, html: Path, png: Path, width: int = 390, height: int = 844
) -> Image.Image:
    subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            f"--user-data-dir={png.parent / 'profile'}",
            f"--window-size={width},{height}",
            f"--screenshot={png}",
            html.as_uri(),
        ],
        capture_output=True,
        timeout=120,
        check=True,
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
