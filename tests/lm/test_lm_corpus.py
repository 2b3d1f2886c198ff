"""Corpus-scale language models: token files and text, streamed, dense or sparse."""

import json

import numpy as np
import pytest

import xsol
from xsol import cli
from xsol.data import context_windows, write_token_file
from xsol.lm import choose_backend, fit_text_lm, fit_token_lm


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    # A Markov chain: 70% of the time a token's fixed successor, else a Zipfian draw.
    rng = np.random.default_rng(0)
    successor = rng.permutation(300)
    noise = rng.zipf(1.3, 60_000) % 300
    follow = rng.random(60_000) < 0.7
    ids = np.empty(60_000, np.uint16)
    ids[0] = 0
    for t in range(1, 60_000):
        ids[t] = successor[ids[t - 1]] if follow[t] else noise[t]
    path = tmp_path_factory.mktemp("tok") / "ids.bin"
    write_token_file(path, ids, "uint16")
    return path, ids


@pytest.mark.parametrize("K", [1, 2])
def test_streamed_fit_equals_the_in_memory_fit(corpus, K):
    path, ids = corpus
    cut = len(ids) - round(len(ids) * 0.05)
    fit = fit_token_lm(path, 300, window=K, held_out=0.05, smoothing=0.1, backend="dense",
                       chunk_tokens=999)
    X, y = context_windows(ids[:cut], K)
    ref = xsol.fit_explicit(X, y, 300, vocab_size=300, smoothing=0.1)
    np.testing.assert_array_equal(np.asarray(fit.model.stats.cooc), np.asarray(ref.stats.cooc))
    Xh, yh = context_windows(ids[cut:], K)
    assert fit.held_out_nll == pytest.approx(ref.nll(Xh, yh), rel=1e-6)
    assert fit.train_tokens == cut and fit.held_out_tokens == len(ids) - cut
    assert fit.held_out_perplexity < fit.unigram_perplexity


@pytest.mark.parametrize("K", [1, 2, 3])
def test_dense_and_sparse_give_the_same_perplexity(corpus, K):
    path, _ = corpus
    dense = fit_token_lm(path, 300, window=K, backend="dense", chunk_tokens=4096)
    sparse = fit_token_lm(path, 300, window=K, backend="sparse", chunk_tokens=4096)
    assert dense.backend == "dense" and sparse.backend == "sparse"
    assert sparse.held_out_perplexity == pytest.approx(dense.held_out_perplexity, rel=1e-6)
    # The sparse statistics, merged chunk by chunk, are the dense counts exactly.
    np.testing.assert_array_equal(np.asarray(sparse.model.stats.to_dense().cooc),
                                  np.asarray(dense.model.stats.cooc))


def test_backend_follows_the_memory_budget():
    assert choose_backend(2000, 1, budget=1 << 30).backend == "dense"
    big = choose_backend(50257, 1, budget=20 << 30)
    assert big.backend == "sparse" and "50,257 x 50,257" in big.reason
    assert choose_backend(50257, 1, backend="dense", budget=1).backend == "dense"
    with pytest.raises(ValueError, match="backend must be one of"):
        choose_backend(10, 1, backend="fast")


def test_auto_backend_goes_sparse_when_dense_does_not_fit(corpus, monkeypatch):
    path, _ = corpus
    monkeypatch.setenv("XSOL_MEMORY_BUDGET", "200K")  # 300 x 300 x 8 bytes = 703 KiB
    fit = fit_token_lm(path, 300)
    assert fit.backend == "sparse" and "sparse:" in fit.choice.reason


def test_arrays_and_npy_files_work_like_raw_files(corpus, tmp_path):
    path, ids = corpus
    npy = tmp_path / "ids.npy"
    np.save(npy, ids.astype(np.uint32))
    a = fit_token_lm(path, 300, window=2)
    b = fit_token_lm(npy, 300, window=2)
    c = fit_token_lm(ids, 300, window=2)
    assert a.held_out_nll == b.held_out_nll == c.held_out_nll


def test_bad_token_input_gets_clear_errors(corpus, tmp_path):
    path, ids = corpus
    bad = ids.copy()
    bad[40_000] = 300
    bad_path = tmp_path / "bad.bin"
    write_token_file(bad_path, bad, "uint16")
    with pytest.raises(ValueError, match=r"bad\.bin.*40000"):
        fit_token_lm(bad_path, 300, chunk_tokens=1000)
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        fit_token_lm(path, 300, held_out=1.0)
    with pytest.raises(ValueError, match="vocab_size must be a positive integer"):
        fit_token_lm(path, 0)
    odd = tmp_path / "odd.bin"
    odd.write_bytes(b"\x01\x00\x02")
    with pytest.raises(ValueError, match="not a multiple"):
        fit_token_lm(odd, 10)
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        fit_token_lm(empty, 10)


def test_text_fit_streams_and_matches_the_in_memory_tokenization():
    res = fit_text_lm(None, vocab_size=500, windows=(1, 2), held_out=0.1, smoothing=0.1)
    ids, vocab = xsol.data.tokenize(xsol.data.load_text(None), vocab_size=500,
                                    keep_punctuation=False)
    assert res.num_tokens == len(ids) and res.vocab_size == len(vocab)
    train, held = xsol.data.split_tokens(ids, 0.1)
    for f, K in zip(res.fits, (1, 2)):
        ref = xsol.fit_explicit(*context_windows(train, K), 500, vocab_size=500, smoothing=0.1)
        assert f.held_out_nll == pytest.approx(ref.nll(*context_windows(held, K)), rel=1e-6)


def test_cli_fits_a_token_file(corpus, tmp_path, capsys):
    path, _ = corpus
    out = tmp_path / "r.json"
    assert cli.main(["fit", "--tokens", str(path), "--vocab-size", "300", "--window", "2",
                     "--sparse", "--no-progress", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "sparse (forced)" in text and "peak memory" in text and "window K=2" in text
    data = json.loads(out.read_text())
    assert [f["window"] for f in data["fits"]] == [1, 2]
    assert all(f["backend"] == "sparse" for f in data["fits"])


def test_cli_refuses_in_one_line(corpus, tmp_path, capsys):
    path, _ = corpus
    assert cli.main(["fit", "--tokens", str(path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("xsol: error: --tokens needs --vocab-size") and "Traceback" not in err
    assert cli.main(["fit", "--tokens", str(path), "--vocab-size", "100", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "outside" in err or "range" in err
    bad = tmp_path / "tokenizer.json"
    bad.write_text("{not json")
    assert cli.main(["fit", "--text", "--tokenizer", str(bad), "--no-progress"]) == 2
    assert "tokenizer.json" in capsys.readouterr().err
    for args in (["--held-out", "0"], ["--window", "0"], ["--vocab-size", "-3"],
                 ["--smoothing", "1e-45"]):
        with pytest.raises(SystemExit) as e:
            cli.main(["fit", "--tokens", str(path), *args])
        assert e.value.code == 2


def test_host_counting_equals_the_jitted_scatter(corpus):
    from xsol.lm.counting import count_windows_host

    _, ids = corpus
    for K in (1, 3):
        X, y = context_windows(ids, K)
        batches = [(X[i:i + 777], y[i:i + 777]) for i in range(0, len(y), 777)]
        host = count_windows_host(batches, 300, 300, K, workers=3)
        ref = xsol.accumulate(batches, 300, vocab_size=300, progress=False)
        for a, b in zip(host, ref):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
            assert np.asarray(a).dtype == np.asarray(b).dtype
    with pytest.raises(ValueError, match="would exceed"):
        count_windows_host([], 300, 300, 2, total_windows=2**31)


def test_text_fit_past_65536_ids_reads_its_uint32_token_file(tmp_path):
    # Vocabularies above 65536 ids are written as uint32; the fit must read them so.
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(70_000)]
    order = rng.permutation(70_000)
    text = " ".join(words) + " " + " ".join(words[i] for i in order)
    src = tmp_path / "wide.txt"
    src.write_text(text)
    res = fit_text_lm(str(src), vocab_size=80_000, windows=(1,), held_out=0.1, backend="sparse")
    fit = res.fits[0]
    assert res.encoder.vocab_size > 65536
    assert fit.vocab_size == res.encoder.vocab_size
    assert fit.train_tokens + fit.held_out_tokens == res.num_tokens == 140_000
    assert np.isfinite(fit.held_out_nll)
