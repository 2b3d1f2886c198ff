"""Text sources, tokenization rules and vocabularies."""

import io
import sys

import numpy as np
import pytest

from xsol.data import (

    UNK,

    TfdsUnavailableError,

    Vocabulary,

    build_vocabulary,

    embedded_text,

    iter_text_chunks,

    load_text,

    split_text,

    tokenize,

)
from xsol.data.tokenizer import safe_cut

# --- sources -------------------------------------------------------------------


def test_embedded_text_is_real_and_deterministic():
    a, b = load_text(), load_text(None)
    assert a == b == embedded_text()
    assert len(a) > 100_000
    assert "assert" in a and "statement" in a
    words = split_text(a, keep_punctuation=False)
    assert len(words) > 20_000


def test_file_and_directory(tmp_path):
    (tmp_path / "b.txt").write_text("second file\n", encoding="utf-8")
    (tmp_path / "a.txt").write_text("Grüße, first\r\nline", encoding="utf-8")
    (tmp_path / "c.md").write_text("ignored", encoding="utf-8")
    assert load_text(tmp_path / "a.txt") == "Grüße, first\nline"  # universal newlines
    assert load_text(str(tmp_path)) == "Grüße, first\nline\nsecond file\n"


def test_missing_and_empty_sources(tmp_path):
    with pytest.raises(FileNotFoundError, match="neither an existing file nor a directory.*tfds:NAME"):
        load_text(tmp_path / "nope.txt")
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(ValueError, match="text is empty"):
        load_text(tmp_path / "empty.txt")
    (tmp_path / "d").mkdir()
    with pytest.raises(FileNotFoundError, match=r"holds no \*\.txt files"):
        load_text(tmp_path / "d")
    with pytest.raises(TypeError):
        load_text(42)


def test_tfds_source_without_tfds(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)
    for src in ["tfds:tiny_shakespeare", "tiny_shakespeare"]:
        with pytest.raises(TfdsUnavailableError, match="pip install tensorflow-datasets") as e:
            load_text(src)
        assert isinstance(e.value, ImportError)
        assert "tfds:tiny_shakespeare" in str(e.value)
    with pytest.raises(ValueError, match="must be followed by a dataset name"):
        load_text("tfds:")


@pytest.mark.parametrize("chunk", [1, 2, 5, 1000])
def test_chunks_concatenate_to_load_text(tmp_path, chunk):
    (tmp_path / "a.txt").write_text("alpha beta\r\ngamma", encoding="utf-8")
    (tmp_path / "b.txt").write_text("délta", encoding="utf-8")
    for src in [tmp_path, tmp_path / "a.txt"]:
        pieces = list(iter_text_chunks(src, chunk))
        assert all(0 < len(p) <= chunk for p in pieces)
        assert "".join(pieces) == load_text(src)
    assert "".join(iter_text_chunks(io.StringIO("x y z"), chunk)) == "x y z"
    with pytest.raises(ValueError, match="chunk_chars must be a positive integer"):
        iter_text_chunks(tmp_path, 0)


# --- tokenization rules --------------------------------------------------------


def test_word_regex():
    text = "Don't stop -- it's 3.14, O'Brien's café_2! ΟΔΟΣ"
    assert split_text(text) == split_text(text, keep_punctuation=False)  # the default
    assert split_text(text, keep_punctuation=True) == [
        "don't", "stop", "-", "-", "it's", "3", ".", "14", ",", "o'brien's", "café_2", "!", "οδος",
    ]
    assert split_text(text, lower=False, keep_punctuation=False) == [
        "Don't", "stop", "it's", "3", "14", "O'Brien's", "café_2", "ΟΔΟΣ",
    ]
    assert split_text("dogs' bone", keep_punctuation=True) == ["dogs", "'", "bone"]


def test_char_level():
    assert split_text("Ab, c\n", "char", keep_punctuation=True) == ["a", "b", ",", " ", "c", "\n"]
    assert split_text("Ab, c\n", "char", lower=False, keep_punctuation=False) == ["A", "b", " ", "c", "\n"]
    with pytest.raises(ValueError, match="level must be one of"):
        split_text("x", "byte")


def test_safe_cut_never_splits_a_token():
    text = "one two, three's four\tfive"
    for i in range(len(text) + 1):
        piece = text[:i]
        cut = safe_cut(piece)
        assert cut == 0 or piece[cut - 1].isspace()
        assert split_text(piece[:cut]) + split_text(piece[cut:] + text[i:]) == split_text(text)
    assert safe_cut("abc", "char") == 3


# --- vocabulary ------------------------------------------------------------------


def test_vocabulary_order_and_ties():
    ids, vocab = tokenize("b a c b a d b")
    # b:3, a:2, then c and d tie at 1 and are ordered by string.
    assert vocab.tokens == [UNK, "b", "a", "c", "d"]
    assert ids.dtype == np.int32
    assert ids.tolist() == [1, 2, 3, 1, 2, 4, 1]
    assert vocab.counts.tolist() == [0, 3, 2, 1, 1]
    assert len(vocab) == 5 and "a" in vocab and vocab.id_of("zzz") == 0


def test_vocab_size_cap_and_oov():
    ids, vocab = tokenize("b a c b a d b", vocab_size=3)
    assert vocab.tokens == [UNK, "b", "a"]
    assert ids.tolist() == [1, 2, 0, 1, 2, 0, 1]
    assert vocab.counts.tolist() == [2, 3, 2]
    assert vocab.encode("A b Zebra").tolist() == [2, 1, 0]
    ids, vocab = tokenize("b a c b a d b", min_count=2)
    assert vocab.tokens == [UNK, "b", "a"]


@pytest.mark.parametrize("bad", [0, 1, -3])
def test_vocab_size_too_small(bad):
    with pytest.raises(ValueError, match="vocab_size must be >= 2"):
        tokenize("a b c", vocab_size=bad)


def test_empty_text():
    with pytest.raises(ValueError, match="text is empty"):
        tokenize("")
    with pytest.raises(ValueError, match="no word tokens"):
        tokenize("  ...  ", keep_punctuation=False)


def test_encode_decode_and_settings():
    ids, vocab = tokenize("Hello, world! Hello.", keep_punctuation=True)
    assert vocab.decode(ids) == "hello , world ! hello ."
    np.testing.assert_array_equal(vocab.encode("Hello, world! Hello."), ids)
    ids, cv = tokenize("abca", "char")
    assert cv.decode(ids) == "abca" and cv.level == "char"
    with pytest.raises(ValueError, match=r"ids must lie in \[0, 4\)"):
        cv.decode([4])


def test_json_and_file_round_trip(tmp_path):
    _, vocab = tokenize("Zwölf Boxkämpfer jagen Viktor quer über den großen Sylter Deich.", "char",
                        lower=False, vocab_size=10)
    again = Vocabulary.from_json(vocab.to_json())
    assert again == vocab and again.settings() == vocab.settings()
    vocab.save(tmp_path / "v.json")
    assert Vocabulary.load(tmp_path / "v.json") == vocab
    assert Vocabulary.load(tmp_path / "v.json").encode("Zwölf").tolist() == vocab.encode("Zwölf").tolist()


def test_vocabulary_validation():
    with pytest.raises(ValueError, match="first token"):
        Vocabulary(["a", UNK])
    with pytest.raises(ValueError, match="duplicate"):
        Vocabulary([UNK, "a", "a"])
    v = build_vocabulary(["x", "y", "x"], level="word")
    assert v.tokens == [UNK, "x", "y"]


def test_embedded_text_default_vocabulary_is_stable():
    text = load_text()
    ids, vocab = tokenize(text)
    ids2, vocab2 = tokenize(text)
    assert vocab == vocab2 and np.array_equal(ids, ids2)
    assert vocab.tokens[0] == UNK and "the" in vocab.tokens[:10]
    assert np.all(np.diff(vocab.counts[1:]) <= 0)
    assert len(ids) == len(split_text(text))
