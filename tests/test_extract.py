"""Fields read from document text (table-driven)."""

import pytest

from tracker.extract import document_fields, subject_line


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


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Please send your comments to the HKMA by 30 June 2026. Thank you.",
            [
                {
                    "date": "2026-06-30",
                    "sentence": "Please send your comments to the HKMA by 30 June 2026.",
                }
            ],
        ),
        (
            "The consultation period ends on 15 January 2027.",
            [
                {
                    "date": "2027-01-15",
                    "sentence": "The consultation period ends on 15 January 2027.",
                }
            ],
        ),
        # An effective date is not a consultation's close, and plain dates are nothing.
        ("The revised requirements will take effect on 1 March 2026.", None),
        ("Our Ref.: B1/15C 12 December 2025 The Chief Executive", None),
    ],
)
def test_consultation_close_dates(text, expected):
    # Absent, not empty, where none is stated: documents read before the field existed keep
    # their content (and their hash) when read again.
    assert document_fields(text).get("consultation_closes") == expected


@pytest.mark.parametrize(
    ("text", "subject"),
    [
        # As stored: the PDF's text flattened (tracker/demo_apis.py CIRCULAR, joined).
        (
            "Our Ref.: B1/15C 12 December 2025 The Chief Executive All authorized institutions "
            "Dear Sir / Madam, Guidance on combating high-end money laundering I am writing to "
            "share the guidance.",
            "Guidance on combating high-end money laundering",
        ),
        (
            "Dear Sirs, Outsourcing of data processing operations I write to remind you.",
            "Outsourcing of data processing operations",
        ),
        ("Dear Sir/Madam,\nCapacity planning\nFurther to our letter of ...", "Capacity planning"),
        # No heading: the first sentence follows the salutation at once.
        ("Dear Sir/Madam, I am writing to inform you of the revised return.", ""),
        # What follows is a sentence, not a heading, or no first sentence is recognised.
        ("Dear Sir/Madam, Thank you for your letter. I write to reply.", ""),
        ("Dear Sir/Madam, " + "word " * 60 + "I am writing", ""),
        ("No letter here. Just text.", ""),
    ],
)
def test_subject_line(text, subject):
    assert subject_line(text) == subject
