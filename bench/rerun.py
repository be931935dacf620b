"""Benchmark: first run vs an immediate no-change re-run over a generated 2,000-document site.

Served from 127.0.0.1: 20 topic pages built on the real AML/CFT page's template
(tracker/demo_site/day1), each listing 99 rows, and one PDF per row (built like the tests'
PDFs): 20 page documents + 1,980 row documents whose PDFs are fetched and read. Prints
requests, bytes, wall time and events of both runs, and their ratios. The re-run must produce
no event and download (almost) nothing again. Run: `python bench/rerun.py` (or `make bench`).
"""

from __future__ import annotations

import re
import resource
import sys
import tempfile
import time
from pathlib import Path

from measure import OTHER_REGULATORS_OFF

from tracker.config import Config, load_config
from tracker.demo import DEMO_PAGE, DEMO_SITE
from tracker.demo_apis import CIRCULAR, make_pdf
from tracker.loopback import RecordedSite
from tracker.run import run

HKMA = "https://www.hkma.gov.hk"
PAGES = 20
ROWS_PER_PAGE = 99
ROW = re.compile(
    r'<div class="content-wrapper multiple-wrapper filter-table-row".*?'
    r"</tr></tbody></table></div></div>",
    re.DOTALL,
)


def build_site(root: Path) -> list[str]:
    template = (
        DEMO_SITE / "day1" / DEMO_PAGE.split("hkma.gov.hk/", 1)[1] / "index.html"
    ).read_text(encoding="utf-8")
    sample_row = ROW.findall(template)[1]  # a PDF row with the real markup
    empty = ROW.sub("", template)
    anchor = '<div class="content-wrapper multiple-wrapper filter-table" id="guidance-papers">'
    urls = []
    for page in range(PAGES):
        rows = []
        for n in range(ROWS_PER_PAGE):
            pdf = f"media/eng/doc/bench/{page:02d}/2025{n:04d}e1.pdf"
            title = f"Generated circular {page}-{n}"
            (root / pdf).parent.mkdir(parents=True, exist_ok=True)
            (root / pdf).write_bytes(make_pdf([title, *CIRCULAR]))
            row = re.sub(r'href="[^"]+\.pdf"', f'href="/{pdf}"', sample_row, count=1)
            row = row.replace(
                "Measures to protect bank customers from authorized payment scams", title
            )
            rows.append(row.replace("20 Dec 2024", f"{1 + n % 28:02d} Mar 2025"))
        path = f"eng/key-functions/banking/bench-topic-{page:02d}/"
        (root / path).mkdir(parents=True)
        html = empty.replace(anchor, "".join(rows) + anchor, 1)
        (root / path / "index.html").write_text(html, encoding="utf-8")
        urls.append(f"{HKMA}/{path}")
    return urls


def measure(label: str, site: RecordedSite, config: Config, db: Path) -> dict[str, float]:
    site.reset_counters()
    started = time.perf_counter()
    report = run(config, db)
    wall = time.perf_counter() - started
    pdfs = [p for p in site.paths if p.endswith(".pdf")]
    figures = {
        "requests": site.requests,
        "pdf_requests": len(pdfs),
        "bytes": site.bytes_sent,
        "wall_s": wall,
        "events": len(report.events),
        "documents": sum(len(p.seen) for p in report.plans),
        "with_text": (report.documents.counts.get("fetched", 0) if report.documents else 0),
        "healthy": all(p.healthy for p in report.plans),
    }
    print(
        f"{label:9} requests {figures['requests']:5d} (PDFs {len(pdfs):5d})  "
        f"bytes {figures['bytes']:11,d}  wall {wall:6.2f} s  documents {figures['documents']:5d}"
        f"  texts read {figures['with_text']:5d}  events {figures['events']:5d}"
    )
    return figures


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="hkma-bench-") as tmp:
        root = Path(tmp) / "site"
        urls = build_site(root)
        config_path = Path(tmp) / "bench.toml"
        pages = ", ".join(f'"{u}"' for u in urls)
        config_path.write_text(
            "[crawl]\ndownload_delay = 0\nretries = 0\n"
            f"{OTHER_REGULATORS_OFF}"
            "[sources.rss]\nenabled = false\n"
            "[sources.brdr]\nenabled = false\n[sources.press_releases]\nenabled = false\n"
            "[documents]\nmax_per_run = 5000\n"
            f"[sources.pages]\nurls = [{pages}]\n"
            f'[digest]\nfolder = "{(Path(tmp) / "digests").as_posix()}"\n',
            encoding="utf-8",
        )
        with RecordedSite(root) as site:
            config = load_config(config_path, [f"{HKMA}={site.base_url}"])
            db = Path(tmp) / "bench.db"
            first = measure("first run", site, config, db)
            rerun = measure("re-run", site, config, db)
        child_rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        db_mb = db.stat().st_size / 1e6
    print(
        f"ratios re-run/first: requests {rerun['requests'] / first['requests']:.3f}, "
        f"bytes {rerun['bytes'] / first['bytes']:.3f}, wall {rerun['wall_s'] / first['wall_s']:.2f}"
    )
    print(f"peak RSS of child processes {child_rss_mb:.0f} MB; database {db_mb:.1f} MB")
    ok = (
        first["documents"] == PAGES * (ROWS_PER_PAGE + 1)
        and first["with_text"] == PAGES * ROWS_PER_PAGE
        and rerun["events"] == 0
        and rerun["pdf_requests"] == 0
        and first["healthy"]
        and rerun["healthy"]
    )
    print("OK: the re-run read no PDF again and produced 0 events" if ok else "FAILED: see above")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
