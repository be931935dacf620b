"""Minimal PDFs built in the tests: one page of Helvetica text, optionally 're-exported'."""

from __future__ import annotations


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def make_pdf(
    lines: list[str], producer: str = "hkma-tracker tests", spacing: int = 14, pages: int = 1
) -> bytes:
    """A valid PDF whose extracted text is `lines` (on each of `pages` pages, which share one
    content stream: a small file that takes long to read). Another `producer` or `spacing`
    gives other bytes with the same text: a re-export."""
    stream = f"BT /F1 10 Tf {spacing} TL 50 800 Td\n"
    stream += "".join(f"({_escape(line)}) Tj T*\n" for line in lines) + "ET"
    page = (
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
        "/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>"
    )
    kids = " ".join(["3 0 R"] + [f"{7 + n} 0 R" for n in range(pages - 1)])
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {pages} >>",
        page,
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        f"<< /Length {len(stream.encode('latin-1'))} >>\nstream\n{stream}\nendstream",
        f"<< /Producer ({_escape(producer)}) >>",
        *[page] * (pages - 1),
    ]
    out = b"%PDF-1.4\n"
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{offset:010d} 00000 n \n" for offset in offsets).encode()
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R /Info 6 0 R >>\n"
        f"startxref\n{xref}\n%%EOF\n"
    ).encode()
    return out


# A circular as HKMA writes them (structure of the 2019 circular quoted in
# ../shared/hkma-sources.md §5: reference numbers, addressee line, effective-date wording).
CIRCULAR = [
    "Our Ref.: B1/15C B9/29C",
    "12 December 2025",
    "The Chief Executive",
    "All authorized institutions",
    "Dear Sir / Madam,",
    "Guidance on combating high-end money laundering",
    "I am writing to share the guidance on combating high-end money laundering.",
    "The guidance supersedes the circular of 5 March 2019.",
    "The revised requirements will take effect on 1 March 2026.",
    "Authorized institutions should review SPM module CR-G-7 and IC-6 accordingly.",
    "Yours faithfully,",
    "Deputy Chief Executive",
]
