"""Vocabularies: token strings <-> integer ids, and `tokenize`.

Id 0 is always `"<unk>"`, the id of every out-of-vocabulary token. The other
ids go to the tokens by descending frequency in the text the vocabulary was
built from, ties broken by the token string (Python's code-point order), so a
vocabulary is a deterministic function of its text and settings. A vocabulary
remembers how its text was tokenized (level, lower-casing, punctuation) so
that `encode` splits new text the same way.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from typing import Iterable, Sequence

import numpy as np

from xsol.data.tokenizer import check_level, split_text
from xsol.core import defaults

__all__ = ["UNK", "Vocabulary", "build_vocabulary", "tokenize"]

UNK = "<unk>"


def _check_nonempty(text: str) -> None:
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    if not text:
        raise ValueError("text is empty: there is nothing to tokenize")


class Vocabulary:
    """A fixed mapping between token strings and ids 0..len-1 (id 0 = "<unk>").

    Attributes:
      tokens: list of token strings; `tokens[i]` has id i and `tokens[0]` is
        "<unk>".
      counts: int64 array, `counts[i]` = occurrences of `tokens[i]` in the
        text the vocabulary was built from (`counts[0]` counts the tokens
        mapped to "<unk>"); None when unknown.
      level, lower, keep_punctuation: the tokenization settings (see
        `xsol.data.tokenizer.split_text`).
    """

    def __init__(
        self,
        tokens: Sequence[str],
        *,
        counts: Sequence[int] | None = None,
        level: str = "word",
        lower: bool = defaults.LOWER,
        keep_punctuation: bool = defaults.KEEP_PUNCTUATION,
    ):
        """Creates a vocabulary from its token list.

        Args:
          tokens: token strings in id order; must start with "<unk>" and hold
            no duplicates.
          counts: optional occurrence counts, one per token.
          level: "word" or "char".
          lower: whether tokens are lower-cased.
          keep_punctuation: whether punctuation marks are tokens.

        Raises:
          ValueError: tokens[0] is not "<unk>", duplicates, or counts of the
            wrong length.
        """
        tokens = [str(t) for t in tokens]
        if not tokens or tokens[0] != UNK:
            raise ValueError(f"a vocabulary's first token (id 0) must be {UNK!r}")
        index = {t: i for i, t in enumerate(tokens)}
        if len(index) != len(tokens):
            dup = [t for t, c in Counter(tokens).items() if c > 1][:5]
            raise ValueError(f"duplicate tokens in vocabulary: {dup}")
        if counts is not None:
            counts = np.asarray(counts, dtype=np.int64)
            if counts.shape != (len(tokens),):
                raise ValueError(f"counts must have shape ({len(tokens)},), got {counts.shape}")
        self.tokens = tokens
        self.counts = counts
        self.level = check_level(level)
        self.lower = bool(lower)
        self.keep_punctuation = bool(keep_punctuation)
        self._index = index

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: str) -> bool:
        return token in self._index

    def __eq__(self, other) -> bool:
        if not isinstance(other, Vocabulary):
            return NotImplemented
        same_counts = (self.counts is None and other.counts is None) or (
            self.counts is not None
            and other.counts is not None
            and np.array_equal(self.counts, other.counts)
        )
        return (
            self.tokens == other.tokens
            and same_counts
            and self.settings() == other.settings()
        )

    def __repr__(self) -> str:
        head = ", ".join(repr(t) for t in self.tokens[:6])
        more = ", ..." if len(self) > 6 else ""
        return f"Vocabulary(size={len(self)}, level={self.level!r}, tokens=[{head}{more}])"

    def settings(self) -> dict:
        """Returns the tokenization settings as keyword arguments for `split_text`."""
        return {"level": self.level, "lower": self.lower, "keep_punctuation": self.keep_punctuation}

    def id_of(self, token: str) -> int:
        """Returns the id of a token (0 when it is not in the vocabulary)."""
        return self._index.get(token, 0)

    def lookup(self, tokens: Iterable[str]) -> np.ndarray:
        """Maps token strings to ids.

        Args:
          tokens: token strings (already split and normalized).

        Returns:
          int32 array of ids; unknown tokens get 0 ("<unk>").
        """
        get = self._index.get
        return np.array([get(t, 0) for t in tokens], dtype=np.int32)

    def encode(self, text: str) -> np.ndarray:
        """Tokenizes text with this vocabulary's settings and maps it to ids.

        Args:
          text: the text (may be empty).

        Returns:
          int32 array of ids, one per token; unknown tokens get 0:
          `self.lookup(split_text(text, **self.settings()))`. For long texts
          `xsol.data.encode.WordEncoder(vocab)` gives the same ids faster
          (each distinct whitespace-separated piece is tokenized once).

        Raises:
          TypeError: text is not a str.
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        return self.lookup(split_text(text, **self.settings()))

    def decode(self, ids) -> str:
        """Maps ids back to text.

        Args:
          ids: integer ids in [0, len(self)).

        Returns:
          The tokens joined by a space (word level) or nothing (char level).
          Lower-casing and spacing are not undone, so this is a readable
          rendering rather than the original text.

        Raises:
          ValueError: an id outside [0, len(self)).
        """
        ids = np.asarray(ids).reshape(-1)
        if ids.size and (ids.min() < 0 or ids.max() >= len(self)):
            raise ValueError(f"ids must lie in [0, {len(self)}), got range [{ids.min()}, {ids.max()}]")
        sep = " " if self.level == "word" else ""
        return sep.join(self.tokens[int(i)] for i in ids)

    def to_json(self) -> str:
        """Serializes the vocabulary.

        Returns:
          A JSON string holding the tokens, counts and settings.
        """
        return json.dumps(
            {
                "tokens": self.tokens,
                "counts": None if self.counts is None else self.counts.tolist(),
                **self.settings(),
            },
            ensure_ascii=False,
        )

    @classmethod
    def from_json(cls, s: str) -> "Vocabulary":
        """Rebuilds a vocabulary from `to_json` output.

        Args:
          s: the JSON string.

        Returns:
          The `Vocabulary`.
        """
        d = json.loads(s)
        return cls(
            d["tokens"],
            counts=d.get("counts"),
            level=d.get("level", "word"),
            lower=d.get("lower", True),
            keep_punctuation=d.get("keep_punctuation", True),
        )

    def save(self, path: str | os.PathLike) -> None:
        """Writes the vocabulary as UTF-8 JSON to `path`.

        Args:
          path: the file to write.

        Returns:
          None.
        """
        with open(path, "w", encoding="utf-8") as f:
            f.write(self.to_json())

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Vocabulary":
        """Reads a vocabulary written by `save`.

        Args:
          path: the file to read.

        Returns:
          The `Vocabulary`.
        """
        with open(path, encoding="utf-8") as f:
            return cls.from_json(f.read())


def check_vocab_size(vocab_size) -> None:
    if vocab_size is None:
        return
    if not isinstance(vocab_size, (int, np.integer)) or isinstance(vocab_size, bool):
        raise TypeError(f"vocab_size must be an int or None, got {vocab_size!r}")
    if vocab_size < 2:
        raise ValueError(
            f"vocab_size must be >= 2 (it counts {UNK!r}, which takes id 0, plus at least "
            f"one real token), got {vocab_size}"
        )


def build_vocabulary(
    tokens: Iterable[str] | Counter,
    *,
    vocab_size: int | None = None,
    min_count: int = 1,
    level: str = "word",
    lower: bool = defaults.LOWER,
    keep_punctuation: bool = defaults.KEEP_PUNCTUATION,
) -> Vocabulary:
    """Builds a vocabulary from token strings (or from their counts).

    Args:
      tokens: the token strings of a text, or a `collections.Counter` of them.
      vocab_size: cap on the total number of ids, "<unk>" included (>= 2);
        None keeps every token seen at least `min_count` times.
      min_count: tokens seen fewer times are left out (they map to "<unk>").
      level, lower, keep_punctuation: the settings the tokens were made with
        (recorded in the vocabulary for `encode`).

    Returns:
      A `Vocabulary`: "<unk>" first, then tokens by descending count, ties
      by token string. Its `counts[0]` is the number of occurrences of
      tokens left out.

    Raises:
      ValueError: vocab_size < 2 or min_count < 1.
    """
    check_vocab_size(vocab_size)
    if min_count < 1:
        raise ValueError(f"min_count must be >= 1, got {min_count}")
    counter = tokens if isinstance(tokens, Counter) else Counter(tokens)
    ranked = sorted(
        ((t, c) for t, c in counter.items() if c >= min_count and t != UNK),
        key=lambda tc: (-tc[1], tc[0]),
    )
    if vocab_size is not None:
        ranked = ranked[: vocab_size - 1]
    kept = sum(c for _, c in ranked)
    total = sum(counter.values())
    return Vocabulary(
        [UNK] + [t for t, _ in ranked],
        counts=[total - kept] + [c for _, c in ranked],
        level=level,
        lower=lower,
        keep_punctuation=keep_punctuation,
    )


def tokenize(
    text: str,
    level: str = "word",
    *,
    vocab_size: int | None = None,
    lower: bool = defaults.LOWER,
    keep_punctuation: bool = defaults.KEEP_PUNCTUATION,
    min_count: int = 1,
) -> tuple[np.ndarray, Vocabulary]:
    """Tokenizes text and builds its vocabulary in one pass.

    The tokenization rules are those of `xsol.data.tokenizer.split_text`: at
    word level the regex `\\w+(?:['’]\\w+)*` for words, plus `[^\\w\\s]` for
    single punctuation marks when they are kept; at character level every
    character. To encode other text (for example held-out text) with the same
    ids, use `vocab.encode(other_text)`.

    Args:
      text: the text (non-empty).
      level: "word" or "char".
      vocab_size: cap on the number of ids including "<unk>" (>= 2); tokens
        beyond it (the rarest) map to id 0. None: no cap.
      lower: lower-case tokens.
      keep_punctuation: keep punctuation marks as tokens.
      min_count: tokens rarer than this map to id 0.

    Returns:
      `(ids, vocab)`: int32 array with one id per token, and the `Vocabulary`.

    Raises:
      ValueError: "text is empty", a text with no tokens, an unknown level,
        vocab_size < 2.
    """
    _check_nonempty(text)
    check_level(level)
    check_vocab_size(vocab_size)
    tokens = split_text(text, level, lower=lower, keep_punctuation=keep_punctuation)
    if not tokens:
        raise ValueError(f"text has no {level} tokens (it holds only whitespace or dropped punctuation)")
    vocab = build_vocabulary(
        Counter(tokens),
        vocab_size=vocab_size,
        min_count=min_count,
        level=level,
        lower=lower,
        keep_punctuation=keep_punctuation,
    )
    return vocab.lookup(tokens), vocab
