"""Fields read from document text (table-driven)."""

import pytest

from tracker.extract import document_fields


@pytest.mark.parametrize(
    ("text", "field", "expected"),
    [
        ("Our Ref.: B1/15C B9/29C 1 November 2019", "references", ["B1/15C", "B9/29C"]),
        ("Our Ref: B10/1C, B1/15C and B1/15C", "references", ["B10/1C", "B1/15C"]),
        ("Tel 2878 8196 on 1/2/2026", "references", []),
        (
            "The Chief Executive All Authorized Institutions Dear Sir",
            "addressees",
            ["All authorized institutions"],
        ),
        (
            "To: All licensed banks and all restricted licence banks",
            "addressees",
            ["All licensed banks", "All restricted licence banks"],
        ),
        (
            "All stored value facility licensees",
            "addressees",
            ["All stored value facility licensees"],
        ),
        ("Revised SPM module CR-G-7, CA-B-3 and IC-6.", "spm_codes", ["CR-G-7", "CA-B-3", "IC-6"]),
        ("COVID-19 measures, form MA(BS)25, HK-1", "spm_codes", []),
        ("Nothing here.", "effective_dates", []),
        (
            "The Guideline takes effect on 1 January 2026. It was issued on 3 March 2025.",
            "effective_dates",
            [{"date": "2026-01-01", "sentence": "The Guideline takes effect on 1 January 2026."}],
        ),
        (
            "With effect from March 4, 2026, the module applies.",
            "effective_dates",
            [
                {
                    "date": "2026-03-04",
                    "sentence": "With effect from March 4, 2026, the module applies.",
                }
            ],
        ),
        (
            "The amendments will come into operation on 30 Sept 2026.",
            "effective_dates",
            [
                {
                    "date": "2026-09-30",
                    "sentence": "The amendments will come into operation on 30 Sept 2026.",
                }
            ],
        ),
        (
            "This circular supersedes the circular of 5 March 2019. Please note.",
            "supersession_mentions",
            ["This circular supersedes the circular of 5 March 2019."],
        ),
    ],
)
def test_document_fields(text, field, expected):
    assert document_fields(text)[field] == expected
