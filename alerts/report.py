"""The attestation report an auditor receives: one printable HTML file, or CSV, or JSON.

It renders what `tracker.compliance.attestation_report` assembled (plain data): every check per
source with the stretches that went without a healthy one, every substantive change with its
review, the deadlines, and what the tracker covers and does not."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from alerts.digest import templates

CSV_COLUMNS = (
    "section", "regulator", "source", "at", "until", "state", "detail", "document_id", "title",
    "url", "owner", "note", "reviewed_at",
)  # fmt: skip


def report_html(report: dict[str, Any]) -> str:
    """One self-contained, printable HTML page (no scripts, no outside resources)."""
    return templates().get_template("report.html").render(report=report)


def report_json(report: dict[str, Any]) -> str:
    return json.dumps(report, ensure_ascii=False, indent=2) + "\n"


# Spreadsheets read a cell as a formula when its first character, after any blanks, is one of
# these (fullwidth forms too: some normalise them); a cell holds at most 32,767 characters.
_FORMULA_STARTS = frozenset("=+-@\t\r\n＝＋－＠")
CELL_LIMIT = 32_767
_CUT = " … [cut: see the JSON or HTML report]"


def spreadsheet_safe(value: Any) -> Any:
    """A cell as a spreadsheet must take it: text that would start a formula begins with a
    quote; text longer than a cell holds is cut, saying so."""
    if not isinstance(value, str):
        return value
    if value.lstrip(" ")[:1] in _FORMULA_STARTS:
        value = "'" + value
    if len(value) > CELL_LIMIT:
        value = value[: CELL_LIMIT - len(_CUT)] + _CUT
    return value


class _SpreadsheetSafe(csv.DictWriter):
    """Every cell through `spreadsheet_safe`: an auditor opens this file in Excel, and a note
    typed by anyone must stay text."""

    def writerow(self, rowdict: Any) -> Any:
        return super().writerow({k: spreadsheet_safe(v) for k, v in rowdict.items()})


def report_csv(report: dict[str, Any]) -> str:
    """One row per check gone wrong, gap, change and deadline, its section first."""
    out = io.StringIO()
    writer = _SpreadsheetSafe(out, CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for source in report["sources"]:
        name = source["source"]
        writer.writerow(
            {
                "section": "checks",
                "regulator": source["regulator"],
                "source": name,
                "at": report["period"]["from"],
                "until": report["period"]["checked_until"],
                "detail": f"{source['checks']} checks, {source['healthy']} healthy",
            }
        )
        for check in source["unhealthy"]:
            writer.writerow(
                {
                    "section": "unhealthy check",
                    "regulator": source["regulator"],
                    "source": name,
                    "at": check["finished_at"],
                    "detail": check["reason"],
                }
            )
        for gap in source["gaps"]:
            writer.writerow(
                {
                    "section": "gap",
                    "regulator": source["regulator"],
                    "source": name,
                    "at": gap["from"],
                    "until": gap["to"] or report["period"]["checked_until"],
                    "detail": f"{gap['missed']} scheduled checks without a healthy result",
                }
            )
    for change in report["changes"]:
        writer.writerow(
            {
                "section": "change",
                "regulator": change["regulator"],
                "source": change["source"],
                "at": change["detected_at"],
                "state": change["state"],
                "detail": change["kind"],
                **{k: change[k] for k in ("document_id", "title", "url", "owner", "note")},
                "reviewed_at": change["reviewed_at"],
            }
        )
    for change in report.get("untagged", []):
        writer.writerow(
            {
                "section": "untagged instrument",
                "regulator": change["regulator"],
                "source": change["source"],
                "at": change["detected_at"],
                "state": change["state"],
                "detail": f"{change['kind']}: no function tag",
                **{k: change[k] for k in ("document_id", "title", "url")},
            }
        )
    for deadline in report["deadlines"]:
        writer.writerow(
            {
                "section": "deadline",
                "regulator": deadline["regulator"],
                "source": deadline["source"],
                "at": deadline["date"],
                "detail": f"{deadline['kind']}: {deadline['evidence'] or ''}",
                **{k: deadline[k] for k in ("document_id", "title", "url")},
            }
        )
    return out.getvalue()
