"""Byte-level BPE tokenizer: a plain reference encoder and a tiktoken-backed fast path.

Both give identical ids. The reference applies merges by rank inside each pretoken (the
specification); the fast path hands the same ranks, regex and special tokens to
`tiktoken.Encoding`, which implements exactly byte-level BPE by merge rank in Rust.

Files: `vocab.json` + `merges.txt` in GPT-2's byte-to-unicode convention,
`special_tokens.json`, and a Hugging Face `tokenizer.json` for transformers and vLLM.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from functools import lru_cache
from pathlib import Path

from lm.pretokenize import GPT2_PATTERN, PRETOKEN_RE, special_split_re

ENDOFTEXT = "<|endoftext|>"


@lru_cache(maxsize=1)
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from bytes to printable unicode characters."""
    printable = (
        list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars = printable[:]
    n = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + n)
            n += 1
    return dict(zip(printable, map(chr, chars)))


def _to_unicode(b: bytes) -> str:
    table = bytes_to_unicode()
    return "".join(table[x] for x in b)


def _from_unicode(s: str) -> bytes:
    inverse = {v: k for k, v in bytes_to_unicode().items()}
    return bytes(inverse[c] for c in s)


class Tokenizer:
    def __init__(
        self,
        vocab: dict[int, bytes],
        merges: list[tuple[bytes, bytes]],
        special_tokens: list[str] | None = None,
        backend: str = "tiktoken",
    ):
        self.vocab = dict(vocab)
        self.merges = list(merges)
        self.special_tokens = list(special_tokens or [])
        self.bytes_to_id = {b: i for i, b in self.vocab.items()}
        for s in self.special_tokens:  # specials missing from the vocab get appended
            if s.encode() not in self.bytes_to_id:
                i = len(self.vocab)
                self.vocab[i] = s.encode()
                self.bytes_to_id[s.encode()] = i
        self.special_ids = {s: self.bytes_to_id[s.encode()] for s in self.special_tokens}
        self.merge_ranks = {pair: r for r, pair in enumerate(self.merges)}
        self._split = special_split_re(self.special_tokens)
        self._cache: dict[str, list[int]] = {}
        self.backend = backend
        self._tiktoken = self._build_tiktoken() if backend == "tiktoken" else None

    # --- construction ---------------------------------------------------------------------
    @classmethod
    def from_files(
        cls, vocab_filepath: str | Path, merges_filepath: str | Path, special_tokens: list[str] | None = None, **kw
    ) -> Tokenizer:
        raw_vocab = json.loads(Path(vocab_filepath).read_text(encoding="utf-8"))
        vocab = {int(i): _from_unicode(tok) for tok, i in raw_vocab.items()}
        merges = []
        for line in Path(merges_filepath).read_text(encoding="utf-8").splitlines():
            if not line or line.startswith("#version"):
                continue
            a, b = line.split(" ")
            merges.append((_from_unicode(a), _from_unicode(b)))
        return cls(vocab, merges, special_tokens, **kw)

    @classmethod
    def from_dir(cls, path: str | Path, **kw) -> Tokenizer:
        path = Path(path)
        specials = json.loads((path / "special_tokens.json").read_text())
        return cls.from_files(path / "vocab.json", path / "merges.txt", specials, **kw)

    def save(self, path: str | Path) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        vocab = {_to_unicode(b): i for i, b in sorted(self.vocab.items())}
        (path / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
        lines = ["#version: 0.2"] + [f"{_to_unicode(a)} {_to_unicode(b)}" for a, b in self.merges]
        (path / "merges.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        (path / "special_tokens.json").write_text(json.dumps(self.special_tokens))
        self.to_hf_tokenizer().save(str(path / "tokenizer.json"))

    def _build_tiktoken(self):
        import tiktoken

        special = {s: i for s, i in self.special_ids.items()}
        ranks = {b: i for i, b in self.vocab.items() if i not in special.values()}
        return tiktoken.Encoding(name="lmforge", pat_str=GPT2_PATTERN, mergeable_ranks=ranks, special_tokens=special)

    def to_hf_tokenizer(self):
        """The same tokenizer as a Hugging Face `tokenizers.Tokenizer` (byte-level BPE)."""
        from tokenizers import AddedToken, Regex, decoders, models, pre_tokenizers
        from tokenizers import Tokenizer as HFTokenizer

        specials = set(self.special_ids.values())
        vocab = {_to_unicode(b): i for i, b in self.vocab.items() if i not in specials}
        vocab.update(self.special_ids)  # in the model's vocab too, so they keep their ids
        merges = [(_to_unicode(a), _to_unicode(b)) for a, b in self.merges]
        tok = HFTokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False, byte_fallback=False))
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(GPT2_PATTERN), behavior="isolated", invert=False),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        )
        tok.decoder = decoders.ByteLevel()
        tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in self.special_tokens])
        for s, i in self.special_ids.items():
            if tok.token_to_id(s) != i:
                raise ValueError(f"special token {s!r} would get id {tok.token_to_id(s)} in tokenizer.json, not {i}")
        return tok

    # --- encoding -------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def _bpe(self, piece: str) -> list[int]:
        """Reference BPE of one pretoken: repeatedly merge the adjacent pair of lowest rank."""
        cached = self._cache.get(piece)
        if cached is not None:
            return cached
        parts = [bytes([b]) for b in piece.encode("utf-8")]
        ranks = self.merge_ranks
        while len(parts) > 1:
            best, best_rank = -1, None
            for i in range(len(parts) - 1):
                r = ranks.get((parts[i], parts[i + 1]))
                if r is not None and (best_rank is None or r < best_rank):
                    best, best_rank = i, r
            if best < 0:
                break
            parts[best : best + 2] = [parts[best] + parts[best + 1]]
        ids = [self.bytes_to_id[p] for p in parts]
        if len(self._cache) < 200_000:
            self._cache[piece] = ids
        return ids

    def encode_reference(self, text: str) -> list[int]:
        ids: list[int] = []
        pos = 0
        segments = self._split.finditer(text) if self._split else ()
        for m in segments:
            for p in PRETOKEN_RE.finditer(text[pos : m.start()]):
                ids.extend(self._bpe(p.group()))
            ids.append(self.special_ids[m.group()])
            pos = m.end()
        for p in PRETOKEN_RE.finditer(text[pos:]):
            ids.extend(self._bpe(p.group()))
        return ids

    def encode(self, text: str) -> list[int]:
        if self._tiktoken is None:
            return self.encode_reference(text)
        return self._tiktoken.encode(text, allowed_special="all")

    def encode_iterable(self, iterable: Iterable[str]) -> Iterator[int]:
        """Stream ids from an iterable of strings (e.g. a file's lines) in constant memory.

        Text is held back only as far as the next chunk could still change it: the last
        two pretokens (a letter run may continue; a trailing whitespace run may give its
        last char to the next pretoken), any whitespace run at the cut, and any tail that
        could begin a special token.
        """
        buf = ""
        max_special = max((len(s) for s in self.special_tokens), default=0)
        for chunk in iterable:
            buf += chunk
            if len(buf) < 4096:
                continue
            cut = self._safe_cut(buf, max_special)
            if cut > 0:
                yield from self.encode(buf[:cut])
                buf = buf[cut:]
        if buf:
            yield from self.encode(buf)

    def _safe_cut(self, buf: str, max_special: int) -> int:
        """Largest prefix of `buf` whose encoding no later text can change."""
        last_special_end = 0
        if self._split:
            for m in self._split.finditer(buf):
                last_special_end = m.end()
        # a special token may be arriving in pieces: the cut must come before any tail
        # that could begin one
        limit = len(buf)
        for k in range(min(max_special, len(buf) - last_special_end), 0, -1):
            if any(s.startswith(buf[-k:]) for s in self.special_tokens):
                limit = len(buf) - k
                break
        starts = [last_special_end + m.start() for m in PRETOKEN_RE.finditer(buf[last_special_end:])]
        # never the last pretoken's start, and never right after whitespace: how a
        # whitespace run splits depends on the character that follows it
        safe = [s for s in starts[:-1] if s <= limit and s > 0 and not buf[s - 1].isspace()]
        return max(safe) if safe else last_special_end

    def decode(self, ids: Iterable[int]) -> str:
        return b"".join(self.vocab[i] for i in ids).decode("utf-8", errors="replace")
