"""Per-code-point tables for the compiled text scanners (filters/_classifier_text.cpp, filters/_gopher.cpp,
lm/_pretokenize.cpp): one byte per code point, built from the very engine the Python path uses (the `regex`
module, or `str` methods), so the compiled and Python paths classify every character alike by construction."""

from __future__ import annotations

import sys
from array import array

import regex

CODE_POINTS = 0x110000


def every_code_point() -> str:
    """U+0000 … U+10FFFF as one string (surrogates included), through UTF-32: joining 1.1M
    one-character strings would peak at ~100 MB; this costs ~13 MB."""
    codec = "utf-32-le" if sys.byteorder == "little" else "utf-32-be"
    return array("I", range(CODE_POINTS)).tobytes().decode(codec, "surrogatepass")


def regex_class_table(classes: list[tuple[int, str]]) -> bytes:
    """table[c] = the value of the last (value, pattern) whose pattern matches chr(c), else 0;
    each pattern a `regex` character class with `+`, such as r"\\p{L}+"."""
    table = bytearray(CODE_POINTS)
    every = every_code_point()
    for value, pattern in classes:
        for m in regex.finditer(pattern, every):
            table[m.start() : m.end()] = bytes([value]) * (m.end() - m.start())
    return bytes(table)
