"""HTML → plain text with resiliparse (encoding detected from the bytes)."""

from __future__ import annotations


def html_to_text(html: bytes, main_content: bool = True) -> str:
    """Visible text of an HTML page: with `main_content`, only the page's main content
    (resiliparse's boilerplate removal drops navigation, headers, footers); else every
    visible block. The encoding is detected from the bytes (meta tags, BOM, content)."""
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.encoding import bytes_to_str, detect_encoding

    return extract_plain_text(bytes_to_str(html, detect_encoding(html)), main_content=main_content)
