"""Splitting text into word or character tokens.

Word level uses one regular expression (Python `re`, Unicode-aware)::

    WORD        = \\w+(?:['’]\\w+)*     a run of letters/digits/underscores,
                                       with inner apostrophes: "don't", "o'clock"
    PUNCTUATION = [^\\w\\s]              any single other non-space character

With `keep_punctuation=True` a token is `WORD|PUNCTUATION`, so every
punctuation mark is a token of its own ("end." -> "end", "."); with False only
WORDs are kept. Whitespace is never part of a token.

Character level makes every character a token, spaces and newlines included;
`keep_punctuation=False` drops the PUNCTUATION characters.

`lower=True` lower-cases each token after splitting (`str.lower` applied per
token), so the result does not depend on where a long text is cut into
chunks.

Because no token spans whitespace, tokenizing `text[:i]` and `text[i:]`
separately gives the same tokens as tokenizing `text` whenever `text[i-1]` is
whitespace (always, at character level); `safe_cut` finds such a place, which
lets streaming readers cut text into chunks without splitting a word.
"""

from __future__ import annotations

import re
from xsol.core import defaults

__all__ = [
    "LEVELS",
    "WORD_PATTERN",
    "PUNCTUATION_PATTERN",
    "check_level",
    "split_text",
    "safe_cut",
]

LEVELS = ("word", "char")
WORD_PATTERN = r"\w+(?:['’]\w+)*"
PUNCTUATION_PATTERN = r"[^\w\s]"

_WORDS_AND_PUNCT = re.compile(f"{WORD_PATTERN}|{PUNCTUATION_PATTERN}")
_WORDS = re.compile(WORD_PATTERN)
_PUNCT = re.compile(PUNCTUATION_PATTERN)


def check_level(level: str) -> str:
    """Validates a tokenization level.

    Args:
      level: "word" or "char".

    Returns:
      The level.

    Raises:
      ValueError: any other value.
    """
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
    return level


def split_text(
    text: str, level: str = "word", *, lower: bool = defaults.LOWER, keep_punctuation: bool = defaults.KEEP_PUNCTUATION
) -> list[str]:
    """Splits text into tokens (see the module docstring for the exact rules).

    Args:
      text: the text.
      level: "word" or "char".
      lower: lower-case every token.
      keep_punctuation: keep punctuation marks as tokens of their own.

    Returns:
      The list of token strings, in text order.
    """
    check_level(level)
    if level == "word":
        tokens = (_WORDS_AND_PUNCT if keep_punctuation else _WORDS).findall(text)
    else:
        tokens = list(text if keep_punctuation else _PUNCT.sub("", text))
    if lower:
        tokens = list(map(str.lower, tokens))
    return tokens


def safe_cut(text: str, level: str = "word") -> int:
    """Largest index `i` at which `text` can be cut without splitting a token.

    Args:
      text: a piece of a longer text whose continuation is not yet known.
      level: "word" or "char".

    Returns:
      `len(text)` at character level; at word level one past the last
      whitespace character (0 when there is none), so that `text[i:]` is the
      possibly incomplete trailing word to carry into the next piece.
    """
    check_level(level)
    if level == "char":
        return len(text)
    # Search backwards cheaply: the tail after the last whitespace is usually short.
    for i in range(len(text) - 1, -1, -1):
        if text[i].isspace():
            return i + 1
    return 0
