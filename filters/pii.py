"""PII masking: emails, phone numbers and IPv4 addresses become fixed placeholders."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import regex

from filters.base import Step, StrictConfig
from filters.document import Document, Stats

EMAIL = regex.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")
# US-style numbers with optional country code, brackets, and ./-/space separators:
# (283)-182-3829, 283 182 3829, +1 283.182.3829. Ten digits in groups of 3-3-4.
PHONE = regex.compile(r"(?<!\w)(?:\+?1[\s.\-]?)?(?:\(\d{3}\)|\d{3})[\s.\-]?\d{3}[\s.\-]?\d{4}(?!\w)")
# not part of a longer dotted number (1.2.3.4.5): no digit or "digit." before, no digit or ".digit" after
IPV4 = regex.compile(r"(?<!\d)(?<!\d\.)(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)(?!\d)(?!\.\d)")

EMAIL_TOKEN = "|||EMAIL_ADDRESS|||"
PHONE_TOKEN = "|||PHONE_NUMBER|||"
IP_TOKEN = "|||IP_ADDRESS|||"


class PIIConfig(StrictConfig):
    enabled: bool = True
    emails: bool = True
    phones: bool = True
    ips: bool = True


def mask_emails(text: str) -> tuple[str, int]:
    return EMAIL.subn(EMAIL_TOKEN, text)


def mask_phone_numbers(text: str) -> tuple[str, int]:
    return PHONE.subn(PHONE_TOKEN, text)


def mask_ips(text: str) -> tuple[str, int]:
    return IPV4.subn(IP_TOKEN, text)


class PIIMasker(Step):
    name = "pii"

    def __init__(self, cfg: PIIConfig = PIIConfig()):
        self.maskers = [
            (k, f)
            for k, f, on in (
                ("emails", mask_emails, cfg.emails),
                ("phones", mask_phone_numbers, cfg.phones),
                ("ips", mask_ips, cfg.ips),
            )
            if on
        ]

    def run(self, docs: Iterable[Document], stats: Stats) -> Iterator[Document]:
        for doc in docs:
            stats.add(self.name, docs_in=1, docs_out=1)
            for kind, mask in self.maskers:
                # cheap pre-checks skip the regex on the vast majority of documents
                if kind == "emails" and "@" not in doc.text:
                    continue
                doc.text, n = mask(doc.text)
                if n:
                    stats.add(self.name, **{f"masked_{kind}": n})
            yield doc
