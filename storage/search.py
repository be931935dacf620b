"""Full-text search of titles and texts. User input is always quoted: it cannot inject FTS5
operators or raise a syntax error. Chinese queries use LIKE (see README: tokenizers)."""

from __future__ import annotations

import re
from typing import Any

import sqlite_utils

_CJK = re.compile(r"[\u3000-\u9fff\uf900-\ufaff]")


def fts_query(text: str) -> str:
    """Each whitespace-separated word as a quoted FTS5 phrase; all must match."""
    return " ".join('"' + word.replace('"', '""') + '"' for word in text.split())


def _like(word: str) -> str:
    escaped = word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def search(db: sqlite_utils.Database, text: str, limit: int = 20) -> list[dict[str, Any]]:
    """Documents matching every word of `text`, best first, with a snippet."""
    words = text.split()
    if not words:
        return []
    columns = "d.id, d.source, d.title, d.url, d.date, d.status, d.functions, d.products"
    if _CJK.search(text):
        # unicode61 makes a run of Chinese characters one token, and trigram misses two-
        # character words: scan instead (fine for a history of thousands of documents).
        conditions = " AND ".join(
            "(f.title LIKE ? ESCAPE '\\' OR f.body LIKE ? ESCAPE '\\')" for _ in words
        )
        params: list[Any] = [p for word in words for p in (_like(word), _like(word))]
        sql = (
            f"SELECT {columns}, substr(f.body, 1, 160) AS snippet FROM documents_fts f "  # noqa: S608
            f"JOIN documents d ON d.rowid = f.rowid WHERE {conditions} "
            "ORDER BY d.date DESC LIMIT ?"
        )
        return list(db.query(sql, [*params, limit]))
    sql = (
        f"SELECT {columns}, snippet(documents_fts, 2, '[', ']', ' … ', 12) AS snippet "  # noqa: S608
        "FROM documents_fts f JOIN documents d ON d.rowid = f.rowid "
        "WHERE documents_fts MATCH ? ORDER BY bm25(documents_fts, 0, 5.0, 1.0) LIMIT ?"
    )
    return list(db.query(sql, [fts_query(text), limit]))
