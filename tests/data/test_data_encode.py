"""Raw text to token ids: encoders, the streamed vocabulary pass, id files, bad bytes."""

import io
import os
import pickle
import re
import sys
import threading
from collections import Counter

import numpy as np
import pytest

from xsol.data import (

    HFTokenizerEncoder,

    TextDecodeError,

    TextEncoder,

    Vocabulary,

    WordEncoder,

    build_vocabulary,

    build_vocabulary_streaming,

    count_tokens,

    encode_text_to_file,

    iter_text_chunks,

    iter_text_ids,

    iter_text_windows,

    load_text,

    load_tokenizer,

    split_text,

)
from xsol.data import text as text_module
from xsol.data.tokenizer import safe_cut

EMBEDDED = load_text(None)
TRICKY = (
    "İstanbul İSTANBUL ΟΔΟΣ.Β ΑΣ'Β ΑΣ straße STRASSE ẞ Don't O’Brien's dogs' rock'n'roll "
    "__init__ x_1 _ 3.14 1,000 ½ ²³ ٣٤ Ⅻ Ⓐ ǅungla ﬁne K --- ...!!! “quotes” (a) [b]{c} "
    "café\u00a0noël a\u2028b\u3000c tab\there\r\nend ' ’ '' x'' 'y\n\n  trailing   "
)
SETTINGS = [
    dict(level=level, lower=lower, keep_punctuation=kp)
    for level in ("word", "char")
    for lower in (True, False)
    for kp in (True, False)
]


def _vocab(settings, vocab_size=2000, text=EMBEDDED + TRICKY):
    return build_vocabulary(split_text(text, **settings), vocab_size=vocab_size, **settings)


def _reference(vocab, text):
    """The definition: split_text with the vocabulary's settings, then look-up."""
    return vocab.lookup(split_text(text, **vocab.settings()))


def _cat(arrays):
    arrays = list(arrays)
    assert all(a.dtype == np.int32 and a.ndim == 1 and len(a) for a in arrays)
    return np.concatenate(arrays) if arrays else np.empty(0, np.int32)


# --- the word/character encoder ----------------------------------------------------


@pytest.mark.parametrize("settings", SETTINGS, ids=lambda s: "-".join(map(str, s.values())))
def test_word_encoder_equals_split_text(settings):
    vocab = _vocab(settings)
    enc = WordEncoder(vocab)
    assert isinstance(enc, TextEncoder) and enc.vocab_size == len(vocab)
    for text in [EMBEDDED, TRICKY, TRICKY * 3 + EMBEDDED[:5000], "", "   \n\t", "x", "İ", "Σ"]:
        ref = _reference(vocab, text)
        for _ in range(2):  # a cold, then a warm cache
            out = enc.encode_chunk(text)
            assert out.dtype == np.int32
            np.testing.assert_array_equal(out, ref)
        np.testing.assert_array_equal(vocab.encode(text), ref)
    # A vocabulary that knows few tokens: most ids are 0 ("<unk>").
    small = _vocab(settings, vocab_size=5)
    np.testing.assert_array_equal(WordEncoder(small).encode_chunk(TRICKY), _reference(small, TRICKY))


def test_lower_casing_is_per_token():
    # Lower-casing the whole text first would be wrong here: "İ" lower-cases to
    # "i" + U+0307 (a combining mark, not \w, so it would become punctuation),
    # and "Σ" lower-cases by context (final sigma) across token boundaries.
    kw = dict(keep_punctuation=True)
    assert split_text("İstanbul", **kw) == ["i̇stanbul"]
    assert split_text("İstanbul".lower(), **kw) == ["i", "̇", "stanbul"]
    assert split_text("ΑΣ.Β", **kw) == ["ας", ".", "β"]
    assert split_text("ΑΣ.Β".lower(), **kw) == ["ασ", ".", "β"]
    settings = dict(level="word", lower=True, keep_punctuation=True)
    vocab = _vocab(settings, vocab_size=None)
    for text in ["İstanbul", "ΑΣ.Β", "ΟΔΟΣ", "STRASSE straße ẞ"]:
        out = WordEncoder(vocab).encode_chunk(text)
        np.testing.assert_array_equal(out, _reference(vocab, text))
        assert 0 not in out  # every token of TRICKY is known
    assert WordEncoder(vocab).encode_chunk("İstanbul").tolist() == [vocab.id_of("i̇stanbul")]


def test_whitespace_rules_agree_on_every_code_point():
    # The word encoder splits text with str.split() and cuts chunks at
    # str.isspace(); the tokenizer's regex skips \s. All three agree.
    everything = "".join(map(chr, range(sys.maxunicode + 1)))
    by_isspace = set(filter(str.isspace, everything))
    by_regex = set(re.findall(r"\s", everything))
    by_split = set(everything) - set("".join("x".join(everything).split()))
    assert by_isspace == by_regex == by_split
    assert len(by_isspace) >= 25


def test_word_encoder_safe_cut():
    vocab = _vocab(dict(level="word", lower=True, keep_punctuation=True))
    enc = WordEncoder(vocab)
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(0, 700))
        chars = rng.choice(list("ab, \n\u3000"), size=n, p=[0.4, 0.4, 0.1, 0.04, 0.03, 0.03])
        s = "".join(chars)
        assert enc.safe_cut(s) == safe_cut(s), repr(s)
    assert enc.safe_cut(" " + "x" * 1000) == 1 and enc.safe_cut("x" * 1000) == 0
    for s in ["a b" + "x" * 300, "a\u3000" + "y" * 256, "a\n" + "z" * 255, "q" * 200 + " " + "r" * 400]:
        assert enc.safe_cut(s) == safe_cut(s), repr(s[:5])
    assert WordEncoder(_vocab(dict(level="char", lower=True, keep_punctuation=True))).safe_cut("ab") == 2


def test_word_encoder_small_cache_and_threads():
    vocab = _vocab(dict(level="word", lower=True, keep_punctuation=True), vocab_size=300)
    ref = _reference(vocab, EMBEDDED)
    enc = WordEncoder(vocab, cache_size=50)
    got = _cat(iter_text_ids(None, enc, chunk_chars=20_000))
    np.testing.assert_array_equal(got, ref)
    assert len(enc._piece_id) <= 50 + 20_000  # emptied when full, between chunks

    shared, texts = WordEncoder(vocab), [EMBEDDED[i::4] for i in range(4)]
    results = [None] * 4

    def work(i):
        results[i] = shared.encode_chunk(texts[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for text, out in zip(texts, results):
        np.testing.assert_array_equal(out, _reference(vocab, text))
    with pytest.raises(ValueError, match="cache_size must be a positive integer"):
        WordEncoder(vocab, cache_size=0)
    with pytest.raises(TypeError, match="vocab must be a xsol.data.Vocabulary"):
        WordEncoder({"a": 1})
    with pytest.raises(TypeError, match="text must be a str"):
        enc.encode_chunk(b"bytes")


# --- streaming ids -----------------------------------------------------------------


@pytest.mark.parametrize("settings", SETTINGS[::3], ids=lambda s: "-".join(map(str, s.values())))
@pytest.mark.parametrize("chunk", [7, 64, 1000, 1 << 22])
def test_iter_text_ids_equals_whole_text(tmp_path, settings, chunk):
    vocab = _vocab(settings, vocab_size=700)
    enc = WordEncoder(vocab)
    text = (TRICKY + EMBEDDED[:20_000]) if chunk < 1000 else (TRICKY + EMBEDDED)
    path = tmp_path / "t.txt"
    path.write_text(text, encoding="utf-8")
    whole = vocab.encode(load_text(path))  # the file reads "\r\n" as "\n"
    np.testing.assert_array_equal(whole, _reference(vocab, load_text(path)))
    np.testing.assert_array_equal(_cat(iter_text_ids(path, enc, chunk_chars=chunk)), whole)
    np.testing.assert_array_equal(
        _cat(iter_text_ids(io.StringIO(text), enc, chunk_chars=chunk)), vocab.encode(text)
    )


def test_iter_text_ids_embedded_directory_and_errors(tmp_path):
    vocab = _vocab(dict(level="word", lower=True, keep_punctuation=True))
    enc = WordEncoder(vocab)
    np.testing.assert_array_equal(_cat(iter_text_ids(None, enc, chunk_chars=50_000)), vocab.encode(EMBEDDED))
    (tmp_path / "a.txt").write_text("one two thr", encoding="utf-8")
    (tmp_path / "b.txt").write_text("ee four", encoding="utf-8")
    np.testing.assert_array_equal(
        _cat(iter_text_ids(tmp_path, enc, chunk_chars=3)), vocab.encode(load_text(tmp_path))
    )
    assert list(iter_text_ids(io.StringIO("  \n "), enc)) == []  # characters, but no tokens
    with pytest.raises(ValueError, match="text is empty"):
        list(iter_text_ids(io.StringIO(""), enc))
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        iter_text_ids(tmp_path / "missing.txt", enc)  # checked at call time
    with pytest.raises(ValueError, match="chunk_chars must be a positive integer"):
        iter_text_ids(None, enc, chunk_chars=0)
    with pytest.raises(TypeError, match="encoder must have vocab_size, name and encode_chunk"):
        iter_text_ids(None, vocab)
    # Progress bar: same ids.
    np.testing.assert_array_equal(
        _cat(iter_text_ids(io.StringIO(TRICKY), enc, progress=True)), vocab.encode(TRICKY)
    )


class _LineLengths:
    """A custom encoder: one id per line, its length (no safe_cut: cut at "\\n")."""

    name = "line lengths"
    vocab_size = 100

    def encode_chunk(self, text):
        return np.array([len(line) for line in text.splitlines()], np.int64)


def test_custom_encoder_uses_the_newline_rule():
    enc = _LineLengths()
    assert isinstance(enc, TextEncoder)
    text = "ab\ncde\n\nfghij\nk"
    for chunk in [1, 2, 3, 100]:
        assert _cat(iter_text_ids(io.StringIO(text), enc, chunk_chars=chunk)).tolist() == [2, 3, 0, 5, 1]

    class Nothing(_LineLengths):
        def encode_chunk(self, text):
            return []  # a plain empty list is fine

    assert list(iter_text_ids(io.StringIO("a\nb"), Nothing())) == []
    with pytest.raises(ValueError, match=r"line lengths produced id 120, outside \[0, vocab_size=100\)"):
        list(iter_text_ids(io.StringIO("x" * 120), enc))


# --- the vocabulary pass -------------------------------------------------------------


@pytest.mark.parametrize("settings", SETTINGS, ids=lambda s: "-".join(map(str, s.values())))
def test_count_tokens_equals_split_text(settings):
    text = TRICKY + EMBEDDED[:50_000]
    for chunk in [13, 4096]:
        counts, total = count_tokens(io.StringIO(text), chunk_chars=chunk, **settings)
        ref = Counter(split_text(text, **settings))
        assert counts == ref and total == ref.total()
        assert all(type(c) is int for c in counts.values())


@pytest.mark.parametrize(
    "kw",
    [
        dict(),
        dict(vocab_size=500),
        dict(vocab_size=32000, min_count=3, keep_punctuation=False),
        dict(level="char", lower=False),
    ],
)
def test_build_vocabulary_streaming_equals_build_vocabulary(kw):
    settings = {k: kw[k] for k in ("level", "lower", "keep_punctuation") if k in kw}
    ref = build_vocabulary(split_text(EMBEDDED, **settings), **kw)
    got = build_vocabulary_streaming(None, chunk_chars=100_000, **kw)
    assert got == ref  # tokens, counts and settings
    assert got.tokens == ref.tokens and got.settings() == ref.settings()


def test_build_vocabulary_streaming_errors(tmp_path):
    with pytest.raises(ValueError, match="vocab_size must be >= 2"):
        build_vocabulary_streaming(None, vocab_size=1)
    with pytest.raises(ValueError, match="min_count must be >= 1"):
        build_vocabulary_streaming(None, min_count=0)
    with pytest.raises(ValueError, match="level must be one of"):
        build_vocabulary_streaming(None, level="byte")
    with pytest.raises(ValueError, match="text is empty"):
        build_vocabulary_streaming(io.StringIO(""))
    with pytest.raises(ValueError, match="no word tokens"):
        build_vocabulary_streaming(io.StringIO(" ... !"), keep_punctuation=False)


# --- id files ----------------------------------------------------------------------


class _Fixed:
    """An encoder of a given vocab_size that emits fixed ids."""

    name = "fixed ids"

    def __init__(self, vocab_size, ids):
        self.vocab_size = vocab_size
        self._ids = np.asarray(ids)

    def encode_chunk(self, text):
        return self._ids if text.strip() else self._ids[:0]


def test_encode_text_to_file_round_trip_and_dtypes(tmp_path):
    vocab = _vocab(dict(level="word", lower=True, keep_punctuation=True), vocab_size=3000)
    enc = WordEncoder(vocab)
    out = tmp_path / "ids.bin"
    n = encode_text_to_file(None, out, enc, chunk_chars=100_000)
    ref = vocab.encode(EMBEDDED)
    assert n == len(ref) and out.stat().st_size == 2 * n  # uint16
    np.testing.assert_array_equal(np.fromfile(out, "<u2"), ref)
    # Replaces an existing file; dtype override.
    assert encode_text_to_file(None, out, enc, dtype="uint32") == n
    np.testing.assert_array_equal(np.fromfile(out, "<u4"), ref)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ids.bin"]  # no temporary left

    big = _Fixed(70_000, [69_999, 0, 65_536])
    assert encode_text_to_file(io.StringIO("a\nb\n"), out, big, chunk_chars=2) == 6
    assert np.fromfile(out, "<u4").tolist() == [69_999, 0, 65_536] * 2
    edge = _Fixed(65_536, [65_535, 1])
    encode_text_to_file(io.StringIO("a"), out, edge)
    assert out.stat().st_size == 4 and np.fromfile(out, "<u2").tolist() == [65_535, 1]

    with pytest.raises(ValueError, match="dtype uint8 cannot hold ids up to 2999"):
        encode_text_to_file(None, out, enc, dtype="uint8")
    with pytest.raises(ValueError, match="integer numpy dtype"):
        encode_text_to_file(None, out, enc, dtype="float32")
    with pytest.raises(ValueError, match="is a directory; expected the path of the token-id file"):
        encode_text_to_file(None, tmp_path, enc)
    with pytest.raises(FileNotFoundError, match="no-such-dir"):
        encode_text_to_file(None, tmp_path / "no-such-dir" / "ids.bin", enc)


def test_encode_text_to_file_failure_leaves_no_file(tmp_path):
    vocab = _vocab(dict(level="word", lower=True, keep_punctuation=True))
    enc = WordEncoder(vocab)
    src = tmp_path / "bad.txt"
    src.write_bytes(EMBEDDED[:30_000].encode() + b" \xff tail")
    out = tmp_path / "out" / "ids.bin"
    out.parent.mkdir()
    with pytest.raises(TextDecodeError, match="bad.txt"):
        encode_text_to_file(src, out, enc, chunk_chars=1000)
    assert list(out.parent.iterdir()) == []
    # An existing file stays as it was.
    out.write_bytes(b"old")

    class Boom:
        name, vocab_size, calls = "boom", 10, 0

        def encode_chunk(self, text):
            Boom.calls += 1
            if Boom.calls > 2:
                raise RuntimeError("encoder failed")
            return np.ones(3, np.int32)

    with pytest.raises(RuntimeError, match="encoder failed"):
        encode_text_to_file(io.StringIO("a\n" * 10), out, Boom(), chunk_chars=2)
    assert out.read_bytes() == b"old" and [p.name for p in out.parent.iterdir()] == ["ids.bin"]
    with pytest.raises(FileNotFoundError):
        encode_text_to_file(tmp_path / "missing.txt", out, enc)
    assert out.read_bytes() == b"old"


# --- Hugging Face tokenizers ----------------------------------------------------------


@pytest.fixture(scope="module", params=["bytelevel", "whitespace"])
def hf_tokenizer_file(request, tmp_path_factory):
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers import models, pre_tokenizers, trainers

    tok = tokenizers.Tokenizer(models.BPE(unk_token="[UNK]"))
    if request.param == "bytelevel":
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        trainer = trainers.BpeTrainer(
            vocab_size=500, show_progress=False, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
        )
    else:
        tok.pre_tokenizer = pre_tokenizers.Whitespace()
        trainer = trainers.BpeTrainer(vocab_size=500, show_progress=False, special_tokens=["[UNK]"])
    tok.train_from_iterator([EMBEDDED], trainer)
    path = tmp_path_factory.mktemp(f"tok-{request.param}") / "tokenizer.json"
    tok.save(str(path))
    return path


def _hf_reference(tok, text):
    """The rule: the ids of each line (with its "\\n"), concatenated."""
    lines = re.findall(r"[^\n]*\n|[^\n]+", text)
    return np.array([i for line in lines for i in tok.encode(line, add_special_tokens=False).ids], np.int32)


def test_hf_encoder_chunk_size_independent(hf_tokenizer_file):
    from tokenizers import Tokenizer

    enc = load_tokenizer(hf_tokenizer_file)
    tok = Tokenizer.from_file(str(hf_tokenizer_file))
    assert isinstance(enc, HFTokenizerEncoder) and isinstance(enc, TextEncoder)
    assert enc.vocab_size == tok.get_vocab_size() and 400 <= enc.vocab_size <= 500
    assert str(hf_tokenizer_file) in enc.name
    text = TRICKY + EMBEDDED[:15_000] + "\nlast line without newline"
    ref = _hf_reference(tok, text)
    assert len(ref) > 1000
    np.testing.assert_array_equal(enc.encode_chunk(text), ref)
    for chunk in [7, 64, 1000, 1 << 22]:
        np.testing.assert_array_equal(_cat(iter_text_ids(io.StringIO(text), enc, chunk_chars=chunk)), ref)
    assert enc.safe_cut("ab\ncd") == 3 and enc.safe_cut("abcd") == 0
    assert enc.encode_chunk("").tolist() == []
    # Through a file: uint16 round trip.
    src = hf_tokenizer_file.parent / "t.txt"
    src.write_text(text, encoding="utf-8")
    out = hf_tokenizer_file.parent / "ids.bin"
    ref = _hf_reference(tok, load_text(src))  # the file reads "\r\n" as "\n"
    assert encode_text_to_file(src, out, enc, chunk_chars=500) == len(ref)
    np.testing.assert_array_equal(np.fromfile(out, "<u2"), ref)


def test_hf_encoder_turns_off_truncation_and_padding(hf_tokenizer_file):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(hf_tokenizer_file))
    ref = _hf_reference(tok, EMBEDDED[:3000])
    tok.enable_truncation(max_length=3)
    tok.enable_padding(length=50)
    enc = HFTokenizerEncoder(tok)
    assert tok.truncation is not None  # the caller's tokenizer is left as it was
    np.testing.assert_array_equal(enc.encode_chunk(EMBEDDED[:3000]), ref)
    assert "BPE" in enc.name
    with pytest.raises(TypeError, match="Hugging Face tokenizers.Tokenizer"):
        HFTokenizerEncoder(object())


def test_load_tokenizer_errors(tmp_path):
    pytest.importorskip("tokenizers")
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json", encoding="utf-8")
    expected = r"expected a Hugging Face tokenizer\.json"
    with pytest.raises(ValueError, match=r"cannot read .*garbage\.json as a tokenizer.*" + expected):
        load_tokenizer(garbage)
    wrong = tmp_path / "wrong.json"
    wrong.write_text('{"tokens": [1, 2]}', encoding="utf-8")
    with pytest.raises(ValueError, match=r"wrong\.json.*" + expected):
        load_tokenizer(wrong)
    with pytest.raises(ValueError, match=r"tokenizer path .* is a directory; " + expected):
        load_tokenizer(tmp_path)
    with pytest.raises(ValueError, match=r"missing\.json does not exist; expected a Hugging Face"):
        load_tokenizer(tmp_path / "missing.json")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "tokenizer.json").write_text("{}", encoding="utf-8")
    with pytest.raises(ValueError, match=r"it holds .*tokenizer\.json: pass that"):
        load_tokenizer(tmp_path / "model")


def test_load_tokenizer_without_tokenizers(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "tokenizers", None)
    with pytest.raises(ImportError, match="pip install tokenizers"):
        load_tokenizer(tmp_path / "tokenizer.json")


# --- undecodable bytes -----------------------------------------------------------


def test_bad_utf8_names_file_and_offset(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"hello \xff world")
    vocab = _vocab(dict(level="word", lower=True, keep_punctuation=True))
    calls = [
        lambda: load_text(bad),
        lambda: list(iter_text_chunks(bad, 3)),
        lambda: list(iter_text_windows(bad, vocab, 1, 4)),
        lambda: list(iter_text_ids(bad, WordEncoder(vocab))),
        lambda: count_tokens(bad),
        lambda: load_text(tmp_path),  # the directory's only *.txt file
    ]
    for call in calls:
        with pytest.raises(TextDecodeError, match=r"bad\.txt as utf-8.*byte offset 6.*errors='replace'") as e:
            call()
        assert isinstance(e.value, ValueError)
        assert e.value.offset == 6 and e.value.path == str(bad) and e.value.encoding == "utf-8"
    again = pickle.loads(pickle.dumps(e.value))  # crosses process boundaries intact
    assert str(again) == str(e.value) and again.offset == 6
    assert load_text(bad, errors="replace") == "hello \ufffd world"
    assert "".join(iter_text_chunks(bad, 4, errors="ignore")) == "hello  world"
    assert count_tokens(bad, errors="replace", keep_punctuation=True)[0] == Counter(
        ["hello", "\ufffd", "world"])
    with pytest.raises(ValueError, match="errors must be one of"):
        load_text(bad, errors="sloppy")
    with pytest.raises(ValueError, match="errors must be one of"):
        iter_text_ids(bad, WordEncoder(vocab), errors="sloppy")


def test_bad_byte_offset_is_exact_across_reads(tmp_path):
    good = ("aé€😀\r\n" * 50).encode()  # 1-, 2-, 3- and 4-byte characters, CRLF
    for bad_bytes in [b"\xff", b"\xe2\x28", b"\xf0\x9f\x98"]:  # invalid start, bad continuation, truncated
        for cut in [0, 1, 5, 77, len(good)]:
            path = tmp_path / "x.txt"
            path.write_bytes(good[:cut] + bad_bytes + (b"tail" if bad_bytes != b"\xf0\x9f\x98" else b""))
            # Only where whole characters end can the bad bytes start.
            try:
                good[:cut].decode()
            except UnicodeDecodeError:
                continue
            for block in [1, 2, 3, 7, 1 << 20]:
                offset, _ = text_module._find_bad_byte(path, "utf-8", block)
                assert offset == cut, (bad_bytes, cut, block)
            with pytest.raises(TextDecodeError, match=f"byte offset {cut}"):
                list(iter_text_chunks(path, 5))


def test_bad_byte_in_second_file_of_directory(tmp_path):
    (tmp_path / "a.txt").write_text("fine text", encoding="utf-8")
    (tmp_path / "b.txt").write_bytes("ok ".encode() + b"\x80")
    message = r"b\.txt as utf-8: invalid start byte b'\\x80' at byte offset 3"
    with pytest.raises(TextDecodeError, match=message):
        load_text(tmp_path)
    assert load_text(tmp_path, errors="replace") == "fine text\nok \ufffd"
    latin = tmp_path / "latin.txt"
    latin.write_bytes("café".encode("latin-1"))
    assert load_text(latin, encoding="latin-1") == "café"


def test_vocabulary_encode_is_unchanged_for_known_cases():
    vocab = Vocabulary(["<unk>", "b", "a"], level="word")
    assert vocab.encode("A b Zebra").tolist() == [2, 1, 0]
    assert vocab.encode("").dtype == np.int32 and vocab.encode("").tolist() == []
    with pytest.raises(TypeError, match="text must be a str"):
        vocab.encode(None)


def test_import_does_not_need_jax():
    code = (
        "import sys, importlib.util, types\n"
        "pkg = types.ModuleType('xsol'); pkg.__path__ = [%r]; sys.modules['xsol'] = pkg\n"
        "import xsol.data.encode\n"
        "assert 'jax' not in sys.modules and 'tokenizers' not in sys.modules\n"
    ) % os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "xsol")
    import subprocess

    subprocess.run([sys.executable, "-c", code], check=True)


def test_public_names_are_exported():
    import xsol.data

    for name in [
        "TextEncoder", "WordEncoder", "HFTokenizerEncoder", "load_tokenizer", "count_tokens",
        "build_vocabulary_streaming", "iter_text_ids", "encode_text_to_file", "TextDecodeError",
    ]:
        assert name in xsol.data.__all__ and hasattr(xsol.data, name), name


# --- both passes in worker processes, over byte ranges of one file ---------------------

from xsol.data import byte_ranges  # noqa: E402

SIZE = 300_000  # the natural split points: 150_000 (2 workers), 100_000 and 200_000 (3)
CRLF_TEXT = (TRICKY + EMBEDDED[:60_000]).replace("\r\n", "\n").replace("\n", "\r\n")


def _fill(n, start=0):
    """n bytes of CRLF_TEXT from character `start`, cut at a character boundary, padded with spaces."""
    b = CRLF_TEXT[start : start + n].encode()[:n].decode("utf-8", "ignore").encode()  # whole characters
    return b + b" " * (n - len(b))


def _layout(marks, size=SIZE):
    """A file of `size` bytes: the given bytes at the given offsets, CRLF text between them."""
    out, pos = bytearray(), 0
    for i, (offset, data) in enumerate(sorted(marks)):
        out += _fill(offset - pos, start=7919 * i)
        out += data
        pos = offset + len(data)
    out += _fill(size - pos, start=3001)
    assert len(out) == size
    return bytes(out)


# Multi-byte characters across the split points, a "\r\n" split by one, a long run
# without whitespace across another, a lone "\r" and a form feed.
AWKWARD = _layout([
    (99_999, "😀".encode()),                      # 100_000 falls inside a 4-byte character
    (149_999, b"\r\n"),                            # 150_000 falls between "\r" and "\n"
    (170_000, "\r\u00e9\x0c".encode()),            # a lone "\r", then a 2-byte character
    (199_999, "é".encode() + b"x" * 60_000),       # 200_000: inside "é", then 60 kB without whitespace
])


@pytest.fixture
def parallel(monkeypatch):
    """Lowers the size threshold; records how many ranges each parallel pass ran."""
    monkeypatch.setattr(byte_ranges, "PARALLEL_MIN_BYTES", 1)
    runs = []
    real = byte_ranges.run_ranges

    def recording(fn, tasks, bar, path):
        result = real(fn, tasks, bar, path)
        runs.append(None if result is None else len(tasks))
        return result

    monkeypatch.setattr(byte_ranges, "run_ranges", recording)
    return runs


@pytest.fixture
def out_dir(tmp_path):
    (tmp_path / "out").mkdir()
    return tmp_path / "out"


def _awkward_file(tmp_path, data=AWKWARD, name="awkward.txt"):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_awkward_file_layout(tmp_path):
    text = load_text(_awkward_file(tmp_path))  # valid UTF-8
    assert AWKWARD[99_999:100_003] == "😀".encode() and AWKWARD[149_999:150_001] == b"\r\n"
    assert "x" * 60_000 in text and "\r" not in text and "😀" in text and "İ" in text


def test_ranges_start_after_whitespace(tmp_path, monkeypatch):
    monkeypatch.setattr(byte_ranges, "PARALLEL_MIN_BYTES", 1)
    path = _awkward_file(tmp_path)
    plan = byte_ranges.plan_ranges
    cut, newline = byte_ranges.CUT_BYTE, byte_ranges.NEWLINE_BYTE
    for workers in (2, 3, 7):
        for rule in (cut, newline):
            _, ranges, codecs_ = plan(path, workers, "utf-8", "strict", rule)
            assert ranges[0][0] == 0 and ranges[-1][1] == SIZE and codecs_[:2] == ("utf-8", "utf-8")
            assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
            for start, _ in ranges[1:]:
                assert rule.fullmatch(AWKWARD[start - 1 : start]), (workers, start)
    _, ranges, _ = plan(path, 2, "utf-8", "strict", cut)
    assert ranges[1][0] == 150_001  # after the "\n" of the split "\r\n", not after its "\r"
    _, ranges, _ = plan(path, 3, "utf-8", "strict", cut)
    assert ranges[1][0] > 100_003 and ranges[2][0] > 260_000  # past the character, past the run
    # A range without a boundary merges into the next.
    run = _layout([(90_000, b"y" * 120_000)])
    assert [len(plan(_awkward_file(tmp_path, run, "run.txt"), w, "utf-8", "strict", cut)[1])
            for w in (2, 3)] == [2, 2]
    (tmp_path / "none.txt").write_bytes(b"z" * 1000)
    assert plan(tmp_path / "none.txt", 3, "utf-8", "strict", cut) is None  # one range: sequential
    # Sequential: one worker, small files, other sources, other encodings and handlers.
    assert plan(path, 1, "utf-8", "strict", cut) is None
    monkeypatch.setattr(byte_ranges, "PARALLEL_MIN_BYTES", SIZE + 1)
    assert plan(path, 3, "utf-8", "strict", cut) is None
    monkeypatch.setattr(byte_ranges, "PARALLEL_MIN_BYTES", 1)
    assert plan(tmp_path, 3, "utf-8", "strict", cut) is None
    assert plan(None, 3, "utf-8", "strict", cut) is None
    assert plan(io.StringIO("a b"), 3, "utf-8", "strict", cut) is None
    for encoding in ("utf-16", "utf-32", "shift_jis", "cp037"):
        assert plan(path, 3, encoding, "strict", cut) is None, encoding
    assert plan(path, 3, "utf-8", "surrogatepass", cut) is None
    for encoding, pair in [("UTF8", ("utf-8", "utf-8")), ("utf-8-sig", ("utf-8-sig", "utf-8")),
                           ("latin-1", ("iso8859-1", "iso8859-1")), ("cp1252", ("cp1252", "cp1252"))]:
        assert plan(path, 3, encoding, "replace", cut)[2] == (*pair, encoding, "replace")


PARALLEL_SETTINGS = [
    dict(level="word", lower=True, keep_punctuation=True),
    dict(level="word", lower=False, keep_punctuation=False),
    dict(level="word", lower=True, keep_punctuation=False),
    dict(level="char", lower=True, keep_punctuation=True),
    dict(level="char", lower=False, keep_punctuation=False),
]


@pytest.mark.parametrize("settings", PARALLEL_SETTINGS, ids=lambda s: "-".join(map(str, s.values())))
def test_parallel_passes_equal_sequential(tmp_path, parallel, settings):
    path = _awkward_file(tmp_path)
    ref_counts = Counter(split_text(load_text(path), **settings))
    ref_vocab = build_vocabulary_streaming(path, vocab_size=300, workers=1, **settings)
    out1 = tmp_path / "ids1.bin"
    n1 = encode_text_to_file(path, out1, WordEncoder(ref_vocab), workers=1)
    assert parallel == []
    np.testing.assert_array_equal(np.fromfile(out1, "<u2"), _reference(ref_vocab, load_text(path)))
    for workers in (2, 3):
        for chunk in (1 << 22, 5000):
            counts, total = count_tokens(path, workers=workers, chunk_chars=chunk, **settings)
            assert counts == ref_counts and total == ref_counts.total()
        vocab = build_vocabulary_streaming(path, vocab_size=300, workers=workers, **settings)
        assert vocab == ref_vocab and vocab.tokens == ref_vocab.tokens
        out = tmp_path / f"ids{workers}.bin"
        assert encode_text_to_file(path, out, WordEncoder(vocab), workers=workers) == n1
        assert out.read_bytes() == out1.read_bytes()
    assert parallel == [2, 2, 2, 2, 3, 3, 3, 3]  # counts twice, vocabulary, encoding
    assert sorted(p.name for p in tmp_path.iterdir()) == ["awkward.txt", "ids1.bin", "ids2.bin", "ids3.bin"]


def test_parallel_hf_tokenizer_equals_sequential(tmp_path, parallel, hf_tokenizer_file):
    from tokenizers import Tokenizer

    enc = load_tokenizer(hf_tokenizer_file)
    path = _awkward_file(tmp_path)
    out1 = tmp_path / "ids1.bin"
    n = encode_text_to_file(path, out1, enc, workers=1, chunk_chars=50_000)
    ref = _hf_reference(Tokenizer.from_file(str(hf_tokenizer_file)), load_text(path))
    np.testing.assert_array_equal(np.fromfile(out1, "<u2"), ref)
    for workers in (2, 3):
        out = tmp_path / f"ids{workers}.bin"
        assert encode_text_to_file(path, out, enc, workers=workers, chunk_chars=50_000) == n
        assert out.read_bytes() == out1.read_bytes()
    assert parallel == [2, 3]


def test_parallel_bad_byte_offset(tmp_path, out_dir, parallel):
    vocab = _vocab(dict(level="word", lower=True, keep_punctuation=True))
    for bad, offset in [(b"\xff", 230_000), (b"\xe2\x82", 250_000), (b"\x80", 150_001)]:
        data = _layout([(149_999, b"\r\n"), (offset, bad + b" ")])
        path = _awkward_file(tmp_path, data, "bad.txt")
        with pytest.raises(TextDecodeError) as seq:
            count_tokens(path, workers=1)
        assert seq.value.offset == offset
        for workers in (2, 3):
            for chunk in (1 << 22, 7):  # 7: the bad bytes straddle reads
                with pytest.raises(TextDecodeError, match=rf"bad\.txt as utf-8: .* at byte offset {offset};"):
                    count_tokens(path, workers=workers, chunk_chars=chunk)
            with pytest.raises(TextDecodeError) as e:
                encode_text_to_file(path, out_dir / "ids.bin", WordEncoder(vocab), workers=workers)
            assert str(e.value) == str(seq.value) and e.value.offset == offset
            assert e.value.path == str(path) and e.value.bad == seq.value.bad
    assert list(out_dir.iterdir()) == []  # no part files left
    # Bad bytes in several ranges: the first one is reported, as sequentially.
    data = _layout([(20_000, b"\xff "), (160_000, b"\xfe "), (280_000, b"\xfd ")])
    path = _awkward_file(tmp_path, data, "bad.txt")
    for workers in (1, 2, 3):
        with pytest.raises(TextDecodeError, match="byte offset 20000;"):
            build_vocabulary_streaming(path, workers=workers)


@pytest.mark.parametrize("errors", ["replace", "ignore", "backslashreplace", "surrogateescape"])
def test_parallel_error_handlers_equal_sequential(tmp_path, out_dir, parallel, errors):
    # Bad bytes at the split points and around a "\r\n": with "ignore", "\r", a dropped
    # byte and "\n" read as one newline, which character-level counts see.
    data = _layout([
        (99_999, b"\r\xff\n"), (149_999, b"\xe2\x82 \xf0\x9f\x98"), (200_000, b"\xc3\r\x80\n"),
        (250_000, b"\n\xed\xa0\x80\t\xff"),
    ])
    path = _awkward_file(tmp_path, data, "bad.txt")
    for level in ("word", "char"):
        ref = count_tokens(path, level=level, errors=errors, workers=1)
        assert ref[0] == Counter(split_text(load_text(path, errors=errors), level))
        for workers in (2, 3):
            assert count_tokens(path, level=level, errors=errors, workers=workers) == ref
    vocab = build_vocabulary_streaming(path, level="char", errors=errors, workers=1)
    out = out_dir / "ids.bin"
    encode_text_to_file(path, out, WordEncoder(vocab), errors=errors, workers=1)
    ref_bytes = out.read_bytes()
    for workers in (2, 3):
        encode_text_to_file(path, out, WordEncoder(vocab), errors=errors, workers=workers, progress=True)
        assert out.read_bytes() == ref_bytes
    assert parallel == [2, 3, 2, 3, 2, 3]


def test_parallel_other_encodings(tmp_path, parallel):
    text = load_text(_awkward_file(tmp_path))
    for encoding, data in [
        ("cp1252", text.replace("😀", "€€").encode("cp1252", "replace")),
        ("latin-1", text.encode("latin-1", "replace")),
        # A byte-order mark at the start and one at the start of the second range.
        ("utf-8-sig", "\ufeff".encode() + _layout([(149_996, "\n\ufeffok\n".encode())], size=SIZE - 3)),
        ("utf-16", text[:5000].encode("utf-16")),  # read sequentially
    ]:
        path = _awkward_file(tmp_path, data, f"{encoding}.txt")
        ref = count_tokens(path, level="char", encoding=encoding, workers=1)
        assert ref[0] == Counter(split_text(load_text(path, encoding=encoding), "char"))
        for workers in (2, 3):
            assert count_tokens(path, level="char", encoding=encoding, workers=workers) == ref
    assert parallel == [2, 3, 2, 3, 2, 3]
    sig_path = tmp_path / "utf-8-sig.txt"
    _, ranges, _ = byte_ranges.plan_ranges(sig_path, 2, "utf-8-sig", "strict", byte_ranges.CUT_BYTE)
    assert ranges[1][0] == 150_000  # the second range starts with the second mark
    sig = load_text(sig_path, encoding="utf-8-sig")
    assert not sig.startswith("\ufeff") and "\n\ufeffok" in sig  # only the first BOM is dropped


def test_parallel_small_files_and_other_sources_stay_in_process(tmp_path, monkeypatch):
    runs = []
    monkeypatch.setattr(byte_ranges, "run_ranges", lambda *a: runs.append(a))
    path = _awkward_file(tmp_path)
    assert byte_ranges.PARALLEL_MIN_BYTES > SIZE
    vocab = build_vocabulary_streaming(path, workers=4)
    assert vocab == build_vocabulary_streaming(path, workers=1)
    encode_text_to_file(path, tmp_path / "ids.bin", WordEncoder(vocab), workers=4)
    monkeypatch.setattr(byte_ranges, "PARALLEL_MIN_BYTES", 1)
    count_tokens(None, workers=4)
    count_tokens(tmp_path, workers=4)  # a directory
    count_tokens(io.StringIO("a b c"), workers=4)
    encode_text_to_file(path, tmp_path / "ids.bin", _Fixed(10, [1, 2]), workers=4)  # a custom encoder
    assert runs == []
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="workers must be a positive integer or None"):
            count_tokens(path, workers=bad)
        with pytest.raises(ValueError, match="workers must be a positive integer or None"):
            encode_text_to_file(path, tmp_path / "ids.bin", WordEncoder(vocab), workers=bad)
    if hasattr(os, "sched_getaffinity"):
        assert byte_ranges.check_workers(None) == len(os.sched_getaffinity(0))


def test_parallel_falls_back_when_no_process_starts(tmp_path, monkeypatch):
    monkeypatch.setattr(byte_ranges, "PARALLEL_MIN_BYTES", 1)

    class NoPool:
        def __init__(self, *args, **kwargs):
            raise OSError("no semaphores here")

    monkeypatch.setattr(byte_ranges, "ProcessPoolExecutor", NoPool)
    path = _awkward_file(tmp_path)
    with pytest.warns(RuntimeWarning, match="in one process: the worker processes failed"):
        vocab = build_vocabulary_streaming(path, workers=2)
    assert vocab == build_vocabulary_streaming(path, workers=1)
    with pytest.warns(RuntimeWarning, match="no semaphores here"):
        n = encode_text_to_file(path, tmp_path / "ids.bin", WordEncoder(vocab), workers=2)
    assert n == len(vocab.encode(load_text(path)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["awkward.txt", "ids.bin"]


def test_parallel_falls_back_when_a_worker_dies():
    with byte_ranges.progress_bar(False, "x") as bar:
        with pytest.warns(RuntimeWarning, match="BrokenProcessPool"):
            assert byte_ranges.run_ranges(os._exit, [(3,), (4,)], bar, "some.txt") is None
