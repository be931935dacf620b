"""Full-text search of titles and texts. User input is always quoted: it cannot inject FTS5
operators or raise a syntax error (see `fts_query` for the little syntax there is).

English (and any language with spaces) goes through the `title` and `body` columns of the
index. Chinese has no spaces, and the tokenizer would make a whole run of characters one token,
so Chinese is indexed apart (`cjk`) as overlapping character pairs: a word of two or more
characters is the phrase of its pairs, a single character the prefix of a pair."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import sqlite_utils

_CJK_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")


def cjk_terms(*texts: str | None) -> str | None:
    """The Chinese in `texts` as index terms: each run of characters as its overlapping pairs,
    then its last character alone (so that one character matches anywhere). None if none.
    A JSON object among `texts` (a document's content) is read for its "text"."""
    terms: list[str] = []
    for text in texts:
        if text and text.startswith("{"):
            text = str(json.loads(text).get("text") or "")
        for run in _CJK_RUN.findall(text or ""):
            terms += [run[i : i + 2] for i in range(len(run) - 1)]
            terms.append(run[-1])
    return " ".join(terms) or None


def _quoted(phrase: str) -> str:
    return '"' + phrase.replace('"', '""') + '"'


_TERM = re.compile(r'"([^"]*)"|(\S+)')


def fts_query(text: str) -> str:
    """The FTS5 query for what a user typed. Every term must match. A term is a word (its
    English stem matches: stablecoins finds stablecoin-related), a "quoted phrase", or a
    word ending in * (a prefix: regul* finds regulation, regulatory). Nothing else is syntax:
    AND, NEAR, ( and : are words like any other, and no input raises an error. Chinese is
    matched in the character-pair index, a run of characters as the phrase of its pairs."""
    parts = []
    for phrase, word in _TERM.findall(text):
        term = phrase if phrase else word.replace('"', " ")
        prefix = not phrase and term.endswith("*") and len(term.rstrip("*")) > 0
        term = term.rstrip("*") if prefix else term
        for run in _CJK_RUN.findall(term):
            pairs = " ".join(run[i : i + 2] for i in range(len(run) - 1))
            parts.append(f"cjk : {_quoted(pairs)}" if pairs else f"cjk : {_quoted(run)} *")
        rest = " ".join(_CJK_RUN.sub(" ", term).split())
        if rest and any(c.isalnum() for c in rest):
            parts.append("{title body} : " + _quoted(rest) + (" *" if prefix else ""))
    return " AND ".join(parts)


def count_matches(db: sqlite_utils.Database, text: str) -> int:
    """How many documents match `text` (what `search` would list without a limit)."""
    query = fts_query(text)
    if not query:
        return 0
    sql = "SELECT count(*) FROM documents_fts WHERE documents_fts MATCH ?"
    return int(db.execute(sql, [query]).fetchone()[0])


RANK_WINDOW = 10_000
"""The most documents one search ranks. Ranking costs about a microsecond per match, so a
query matching a few percent of a million documents would take 50 ms or more; past this many
matches only the newest (by when first seen) are ranked, and `Found.newest_ranked` says so.
HKMA publishes about a thousand documents a year: only a broad word over a long history of
several regulators reaches it."""


@dataclass(frozen=True)
class Found:
    hits: list[dict[str, Any]]
    newest_ranked: int | None = None  # when more documents matched: how many, the newest, ranked


def search(
    db: sqlite_utils.Database, text: str, limit: int = 20, window: int | None = None
) -> Found:
    """Documents matching every word of `text`, best first, with a snippet.

    The best `limit` are chosen from the index alone, among the newest `window` matches
    (`RANK_WINDOW`, or `limit` if more); only those are joined and given a snippet, so the
    cost follows the matches' count up to that bound, never the history's size."""
    query = fts_query(text)
    if not query:
        return Found([])
    window = max(window or RANK_WINDOW, limit)
    # Index rowids are documents' rowids, which grow as documents are first seen.
    past_window = db.execute(
        "SELECT rowid FROM documents_fts WHERE documents_fts MATCH ? "
        "ORDER BY rowid DESC LIMIT 1 OFFSET ?",
        [query, window],
    ).fetchone()
    ranked = [
        row[0]
        for row in db.execute(
            "SELECT rowid FROM documents_fts WHERE documents_fts MATCH ? AND rowid > ? "
            "ORDER BY bm25(documents_fts, 0, 5.0, 1.0, 1.0) LIMIT ?",
            [query, past_window[0] if past_window else 0, limit],
        )
    ]
    hits = []
    for rowid in ranked:
        row = next(
            db.query(
                "SELECT d.id, d.source, d.title, d.url, d.date, d.status, d.functions, "
                "d.products, snippet(documents_fts, 2, '[', ']', ' … ', 12) AS snippet "
                "FROM documents_fts f JOIN documents d ON d.rowid = f.rowid "
                "WHERE documents_fts MATCH ? AND f.rowid = ?",
                [query, rowid],
            )
        )
        if not row["snippet"].strip(" …"):  # matched in a title or in Chinese only
            row["snippet"] = ""
        hits.append(row)
    return Found(hits, window if past_window else None)
