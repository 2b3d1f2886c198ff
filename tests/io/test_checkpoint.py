"""Saved models and statistics: exact round trips, refused inputs, ``fit --out`` and ``eval``."""

import json

import jax
import numpy as np
import pytest

import xsol
from token_streams import bigram_data
from xsol.io import checkpoint
from xsol.io.checkpoint import CheckpointError, CheckpointExistsError
from xsol.cli import main
from xsol.data import context_windows, load_images, tokenize, write_token_file
from xsol.lm import fit_token_lm, score_solution

TEXT = "the cat sat on the mat . the dog sat on the log . " * 200
OTHER = "the dog sat on the mat . a cat sat on the log . a bird flew . " * 40


def _same_array(a, b):
    """Same container (JAX or NumPy), dtype, shape and bits."""
    assert isinstance(a, jax.Array) == isinstance(b, jax.Array)
    assert np.asarray(a).dtype == np.asarray(b).dtype and np.shape(a) == np.shape(b)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b), strict=True)


def _same_tree(a, b):
    for x, y in zip(a, b, strict=True):
        _same_array(x, y)


@pytest.fixture(scope="module")
def digits():
    return load_images("digits", flatten=True)


@pytest.fixture(scope="module")
def tokens():
    return bigram_data(np.random.default_rng(0), vocab_size=6, length=3000)


# --- round trips ---------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["plain", "temperature", "prior once"])
def test_dense_image_solution_round_trip(tmp_path, digits, variant):
    x, y, xt, yt = digits
    sol = xsol.fit_explicit(x, y, 10)
    if variant != "plain":
        sol = sol.calibrate(x, y, prior="scaled" if variant == "temperature" else "once")
    assert xsol.save(sol, tmp_path / "m") == tmp_path / "m"
    got = xsol.load(tmp_path / "m")
    assert isinstance(got, xsol.ExplicitSolution) and repr(got) == repr(sol)
    _same_array(got.weights, sol.weights)
    _same_array(got.bias, sol.bias)
    _same_tree(got.stats, sol.stats)
    for f in ("kind", "normalize", "smoothing", "vocab_size", "window", "inverse_temperature",
              "rows_normalized"):
        assert getattr(got, f) == getattr(sol, f), f
    np.testing.assert_array_equal(got.predict(xt), sol.predict(xt))
    np.testing.assert_array_equal(got.predict_proba(xt), sol.predict_proba(xt))
    assert got.nll(xt, yt) == sol.nll(xt, yt)
    meta = checkpoint.read_metadata(tmp_path / "m")
    assert meta["format"] == "xsol-checkpoint" and meta["format_version"] == 1
    assert meta["object"] == "ExplicitSolution" and meta["kind"] == "dense"
    assert meta["xsol_version"] == xsol.__version__ and meta["vocabulary"] is None


def test_a_checkpoint_can_be_moved_and_named_relatively(tmp_path, digits, monkeypatch):
    x, y, xt, _ = digits
    sol = xsol.fit_explicit(x[:300], y[:300], 10)
    monkeypatch.chdir(tmp_path)
    xsol.save(sol, "rel")
    (tmp_path / "rel").rename(tmp_path / "moved")
    got = xsol.load("moved")
    _same_array(got.weights, sol.weights)
    np.testing.assert_array_equal(got.predict(xt), sol.predict(xt))


def test_64_bit_counts_load_without_x64_only_when_exact(tmp_path):
    small = np.array([3, 2**31 - 1], np.int64)
    got = checkpoint._to_jax(small, "cooc", tmp_path)
    assert got.dtype == np.int32 and np.array_equal(np.asarray(got), small)
    with pytest.raises(CheckpointError, match="beyond int32; enable"):
        checkpoint._to_jax(np.array([2**31], np.int64), "cooc", tmp_path)
    with pytest.raises(CheckpointError, match="float64; enable"):
        checkpoint._to_jax(np.zeros(2), "weights", tmp_path)


@pytest.mark.parametrize("K", [1, 2])
def test_dense_token_lm_round_trip(tmp_path, tokens, K):
    fit = fit_token_lm(tokens, 6, window=K, held_out=0.1, backend="dense")
    xsol.save(fit.model, tmp_path / "lm", info={"source": "bigram"})
    got = xsol.load(tmp_path / "lm", expect=xsol.ExplicitSolution)
    _same_array(got.weights, fit.model.weights)
    _same_tree(got.stats, fit.model.stats)
    assert got.window == K and got.vocab_size == 6
    assert got.rows_normalized == fit.model.rows_normalized == (K == 1)
    X, y = context_windows(tokens[-300:], K)
    assert got.nll(X, y) == fit.model.nll(X, y)
    assert score_solution(got, tokens) == score_solution(fit.model, tokens)
    ids, p = got.top_next(X[0])
    ids0, p0 = fit.model.top_next(X[0])
    np.testing.assert_array_equal(ids, ids0)
    np.testing.assert_array_equal(p, p0)
    assert checkpoint.read_metadata(tmp_path / "lm")["info"] == {"source": "bigram"}


@pytest.mark.parametrize("K", [1, 2, 3])
def test_sparse_lm_round_trip(tmp_path, tokens, K):
    X, y = context_windows(tokens[:2500], K)
    lm = xsol.SparseExplicitLM.fit(X, y, 6, smoothing=0.05, normalize="none")
    xsol.save(lm, tmp_path / "s")
    got = xsol.load(tmp_path / "s", expect=(xsol.SparseExplicitLM, "ExplicitSolution"))
    assert isinstance(got, xsol.SparseExplicitLM)
    assert (got.smoothing, got.normalize, got.window) == (0.05, "none", K)
    for f in ("keys", "counts", "feature_totals", "label_counts"):
        _same_array(getattr(got.stats, f), getattr(lm.stats, f))
    assert got.stats.num_examples == lm.stats.num_examples
    for f in ("row_log_norm", "row_const", "corrections"):
        _same_array(getattr(got, f), getattr(lm, f))
    Xh, yh = context_windows(tokens[2500:], K)
    _same_array(got.nll_per_example(Xh, yh), lm.nll_per_example(Xh, yh))
    _same_array(got.log_probs(Xh[0]), lm.log_probs(Xh[0]))
    assert checkpoint.read_metadata(tmp_path / "s")["kind"] == "ids"


def test_statistics_round_trip(tmp_path, tokens, digits):
    X, y = context_windows(tokens, 2)
    acc = xsol.stats.token_cooccurrence(6, 6, window=2)
    jax_stats = acc.update(acc.init(), X, y)  # JAX arrays
    host_stats = xsol.fit_explicit(digits[0], digits[1], 10).stats  # NumPy float64 / int64
    for i, stats in enumerate((jax_stats, host_stats)):
        checkpoint.save(stats, tmp_path / f"c{i}")
        got = xsol.load(tmp_path / f"c{i}", expect="CoocStats")
        assert isinstance(got, xsol.stats.CoocStats)
        _same_tree(got, stats)
        assert type(got.num_examples) is type(stats.num_examples)
    sparse = xsol.stats.sparse_cooccurrence(X, y, 6)
    xsol.save(sparse, tmp_path / "sp")
    got = xsol.load(tmp_path / "sp", expect=xsol.stats.SparseStats)
    for f in ("keys", "counts", "feature_totals", "label_counts"):
        _same_array(getattr(got, f), getattr(sparse, f))
    assert (got.num_examples, got.vocab_size, got.num_classes, got.window) == \
        (sparse.num_examples, 6, 6, 2)
    # No pair seen: the empty arrays (which Orbax does not store) come back too.
    empty = xsol.stats.SparseStats(np.zeros(0, np.int64), np.zeros(0, np.int64),
                             np.zeros(6, np.int64), np.zeros(6, np.int64), 0, 6, 6, 1)
    xsol.save(empty, tmp_path / "empty")
    got = xsol.load(tmp_path / "empty")
    assert got.nnz == 0 and got.keys.dtype == np.int64 and got.num_features == 6


def test_a_vocabulary_is_stored_with_a_text_model(tmp_path):
    ids, vocab = tokenize(TEXT, vocab_size=8)
    X, y = context_windows(ids, 2)
    sol = xsol.fit_explicit(X, y, len(vocab), vocab_size=len(vocab))
    xsol.save(sol, tmp_path / "t", vocabulary=vocab)
    assert checkpoint.load_vocabulary(tmp_path / "t") == vocab
    meta = checkpoint.read_metadata(tmp_path / "t")
    assert meta["vocabulary"]["tokens"] == vocab.tokens and meta["tokenizer"] is None
    enc = checkpoint.load_encoder(tmp_path / "t")
    np.testing.assert_array_equal(enc.encode_chunk(OTHER), vocab.encode(OTHER))
    with pytest.raises(ValueError, match="vocabulary has 8 ids but the model's vocab_size is 9"):
        xsol.save(xsol.fit_explicit(X, y, 9, vocab_size=9), tmp_path / "u", vocabulary=vocab)
    assert not (tmp_path / "u").exists()
    with pytest.raises(TypeError, match="Vocabulary"):
        xsol.save(sol, tmp_path / "u", vocabulary=["<unk>", "the"])
    # A model fitted on ids has no vocabulary.
    xsol.save(sol, tmp_path / "ids")
    assert checkpoint.load_encoder(tmp_path / "ids") is None


def test_a_hugging_face_tokenizer_is_stored_with_a_text_model(tmp_path):
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers import models, pre_tokenizers, trainers

    from xsol.data import HFTokenizerEncoder, iter_text_ids

    tok = tokenizers.Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator([TEXT, OTHER], trainers.BpeTrainer(
        vocab_size=60, show_progress=False, special_tokens=["[UNK]"]))
    enc = HFTokenizerEncoder(tok, name="tiny BPE")
    ids = np.concatenate(list(iter_text_ids(_write(tmp_path / "x.txt", TEXT), enc)))
    lm = xsol.SparseExplicitLM.fit(ids[:-1], ids[1:], enc.vocab_size)
    xsol.save(lm, tmp_path / "hf", vocabulary=enc)
    assert (tmp_path / "hf" / "tokenizer.json").is_file()
    got = checkpoint.load_encoder(tmp_path / "hf")
    assert isinstance(got, HFTokenizerEncoder) and got.name == "tiny BPE"
    np.testing.assert_array_equal(got.encode_chunk(OTHER), enc.encode_chunk(OTHER))
    assert checkpoint.load_vocabulary(tmp_path / "hf") is None


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


# --- refused inputs --------------------------------------------------------------------


@pytest.fixture
def saved(tmp_path, tokens):
    X, y = context_windows(tokens[:1000], 2)
    lm = xsol.SparseExplicitLM.fit(X, y, 6)
    return xsol.save(lm, tmp_path / "model"), lm


def test_missing_or_invalid_directories_are_clear_errors(tmp_path, saved):
    path, _ = saved
    with pytest.raises(CheckpointError, match=r"no model at .*nowhere: the directory does not"):
        xsol.load(tmp_path / "nowhere")
    (tmp_path / "f").write_text("x")
    with pytest.raises(CheckpointError, match=r"f is a file"):
        xsol.load(tmp_path / "f")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match=r"empty is not an xsol checkpoint: xsol.json is "
                                              "missing"):
        xsol.load(tmp_path / "empty")
    # A save interrupted before the description was written never loads.
    (path / "xsol.json").unlink()
    with pytest.raises(CheckpointError, match="xsol.json is missing"):
        xsol.load(path)


@pytest.mark.parametrize("edit, message", [
    (lambda m: "{not json", r"cannot read .*xsol.json"),
    (lambda m: dict(m, format="npz"), r"has format 'npz', expected 'xsol-checkpoint'"),
    (lambda m: {k: v for k, v in m.items() if k != "format"}, r"has format None"),
    (lambda m: dict(m, format_version="1"), r"format_version '1'"),
    (lambda m: dict(m, format_version=2),
     r"format version 2; this xsol \(.*\) reads versions up to 1: upgrade"),
    (lambda m: dict(m, object="Tokenizer"), r"object 'Tokenizer', expected one of"),
    (lambda m: {k: v for k, v in m.items() if k != "smoothing"},
     r"lacks the field 'smoothing' a SparseExplicitLM needs"),
    (lambda m: dict(m, arrays=dict(m["arrays"], keys=dict(m["arrays"]["keys"], shape=[3]))),
     r"array 'keys' is \(\d+,\) int64, expected \(3,\) int64 as xsol.json records"),
    (lambda m: dict(m, arrays=dict(m["arrays"], keys=dict(m["arrays"]["keys"], type="list"))),
     r"unknown type 'list'"),
])
def test_damaged_descriptions_are_clear_errors(saved, edit, message):
    path, _ = saved
    meta = json.loads((path / "xsol.json").read_text())
    new = edit(meta)
    (path / "xsol.json").write_text(new if isinstance(new, str) else json.dumps(new))
    with pytest.raises(CheckpointError, match=message) as e:
        xsol.load(path)
    assert str(path) in str(e.value)


def test_missing_arrays_and_the_wrong_object_are_clear_errors(saved):
    path, _ = saved
    with pytest.raises(CheckpointError, match=r"model holds a SparseExplicitLM, expected "
                                              r"ExplicitSolution or CoocStats"):
        xsol.load(path, expect=(xsol.ExplicitSolution, "CoocStats"))
    with pytest.raises(ValueError, match="expect must name"):
        xsol.load(path, expect="Model")
    import shutil

    shutil.rmtree(path / "arrays")
    with pytest.raises(CheckpointError, match=r"cannot read the arrays of .*model"):
        xsol.load(path)


def test_saving_refuses_to_replace_data(tmp_path, saved, tokens):
    path, lm = saved
    other = xsol.SparseExplicitLM.fit(tokens[:-1], tokens[1:], 6)
    with pytest.raises(CheckpointExistsError, match=r"refusing to replace the model in .*"
                                                    r"model: .*overwrite=True") as e:
        xsol.save(other, path)
    assert isinstance(e.value, FileExistsError)
    assert xsol.load(path).window == 2  # untouched
    xsol.save(other, path, overwrite=True)
    assert xsol.load(path).window == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # nothing left beside it
    # Data that is not a checkpoint is never replaced, even with overwrite.
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "notes.txt").write_text("keep me")
    with pytest.raises(CheckpointError, match="not an xsol checkpoint"):
        xsol.save(lm, tmp_path / "data", overwrite=True)
    assert (tmp_path / "data" / "notes.txt").read_text() == "keep me"
    (tmp_path / "file").write_text("x")
    with pytest.raises(CheckpointError, match="it is a file"):
        xsol.save(lm, tmp_path / "file")
    (tmp_path / "empty").mkdir()
    xsol.save(lm, tmp_path / "empty")  # an empty directory is fine
    xsol.save(lm, tmp_path / "new" / "nested")  # parents are created
    assert xsol.load(tmp_path / "new" / "nested").window == 2
    with pytest.raises(TypeError, match="cannot save a dict"):
        checkpoint.save({}, tmp_path / "d")


def test_an_interrupted_save_leaves_nothing_that_loads(tmp_path, saved, monkeypatch, tokens):
    import orbax.checkpoint as ocp

    path, _ = saved
    other = xsol.SparseExplicitLM.fit(tokens[:-1], tokens[1:], 6)

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(ocp.StandardCheckpointHandler, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        xsol.save(other, tmp_path / "fresh")
    with pytest.raises(KeyboardInterrupt):
        xsol.save(other, path, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no partial directory
    assert xsol.load(path).window == 2  # the earlier model is intact

    monkeypatch.undo()
    monkeypatch.setattr(checkpoint, "_fsync_dir", crash)  # after the arrays, before renaming
    with pytest.raises(KeyboardInterrupt):
        xsol.save(other, path, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    assert xsol.load(path).window == 2


# --- the command line -------------------------------------------------------------------


def test_cli_fit_digits_out_then_eval(tmp_path, capsys):
    out, fit_json, eval_json = tmp_path / "digits", tmp_path / "fit.json", tmp_path / "ev.json"
    assert main(["fit", "--dataset", "digits", "--out", str(out), "--json", str(fit_json)]) == 0
    assert f"to {out}" in capsys.readouterr().out
    fitted = json.loads(fit_json.read_text())
    assert fitted["model_dir"] == str(out)
    row = fitted["rows"][0]
    assert main(["eval", "--model", str(out), "--dataset", "digits", "--json",
                 str(eval_json)]) == 0
    text = capsys.readouterr().out
    assert "digits test: 360 examples, accuracy" in text
    res = json.loads(eval_json.read_text())
    assert res["accuracy"] == row["test_accuracy"] and res["loss"] == row["test_loss"]
    assert res["object"] == "ExplicitSolution" and res["examples"] == 360
    # An existing model is refused before anything is fitted; --overwrite replaces it.
    assert main(["fit", "--dataset", "digits", "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert "refusing to replace" in captured.err and "explicit" not in captured.out
    assert main(["fit", "--dataset", "digits", "--limit", "200", "--out", str(out),
                 "--overwrite"]) == 0
    assert checkpoint.read_metadata(out)["info"]["train_examples"] == 200


def test_cli_text_lm_saved_and_evaluated_on_another_text(tmp_path, capsys):
    small, other = _write(tmp_path / "small.txt", TEXT), _write(tmp_path / "other.txt", OTHER)
    out = tmp_path / "lm"
    assert main(["fit", "--text", str(small), "--vocab-size", "20", "--window", "2",
                 "--no-progress", "--out", str(out)]) == 0
    assert "saved the K=2 model" in capsys.readouterr().out
    assert main(["eval", "--model", str(out), "--text", str(other), "--no-progress",
                 "--json", str(tmp_path / "e.json")]) == 0
    assert "perplexity" in capsys.readouterr().out
    res = json.loads((tmp_path / "e.json").read_text())
    # The same figure by hand: the stored vocabulary encodes the new text.
    model, vocab = xsol.load(out), checkpoint.load_vocabulary(out)
    ids = vocab.encode(OTHER)
    X, y = context_windows(ids, 2)
    assert res["tokens"] == len(ids) and res["examples"] == len(y)
    assert res["loss"] == pytest.approx(model.nll(X, y), rel=1e-6)
    assert res["perplexity"] == pytest.approx(np.exp(res["loss"]))
    assert res["unknown_tokens"] == int(np.sum(ids == 0)) > 0  # "a", "bird", "flew"
    # Data that does not fit the model: one line, exit 2.
    for argv, message in (
        (["--dataset", "digits"], "is a language model over token ids"),
        (["--text", str(other), "--window", "3"], "--window 3 does not match"),
        (["--text", str(other), "--vocab-size", "20"], "describe a --tokens file"),
        (["--tokens", str(other), "--vocab-size", "99"], "--vocab-size 99 does not match"),
        (["--text", str(tmp_path / "missing.txt")], "missing.txt"),
    ):
        assert main(["eval", "--model", str(out), "--no-progress", *argv]) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("xsol: error:") and message in err and "Traceback" not in err
        assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("backend", ["--dense", "--sparse"])
def test_cli_token_file_lm(tmp_path, tokens, capsys, backend):
    train, held = tmp_path / "train.bin", tmp_path / "held.bin"
    write_token_file(train, tokens[:2500], "uint16")
    write_token_file(held, tokens[2500:], "uint16")
    out = tmp_path / "tok"
    assert main(["fit", "--tokens", str(train), "--vocab-size", "6", "--window", "2",
                 backend, "--no-progress", "--out", str(out)]) == 0
    capsys.readouterr()
    model = xsol.load(out)
    assert isinstance(model, xsol.SparseExplicitLM if backend == "--sparse"
                      else xsol.ExplicitSolution)
    assert checkpoint.read_metadata(out)["info"]["data"] == "tokens"
    assert main(["eval", "--model", str(out), "--tokens", str(held), "--vocab-size", "6",
                 "--json", str(tmp_path / "e.json")]) == 0
    assert "next tokens scored" in capsys.readouterr().out
    res = json.loads((tmp_path / "e.json").read_text())
    X, y = context_windows(tokens[2500:], 2)
    assert res["examples"] == len(y)
    assert res["loss"] == pytest.approx(float(np.mean(model.nll_per_example(X, y)))
                                        if backend == "--sparse" else model.nll(X, y), rel=1e-6)
    bad = tmp_path / "bad.bin"
    write_token_file(bad, np.array([1, 2, 9, 3], np.uint16), "uint16")
    short = tmp_path / "short.bin"
    write_token_file(short, np.array([1, 2], np.uint16), "uint16")
    for argv, message in (
        (["--tokens", str(held), "--vocab-size", "7"], "whose vocabulary has 6 ids"),
        (["--tokens", str(bad)], "token id 9 at token offset 2"),
        (["--tokens", str(short)], "holds 2 token(s); the model's window K=2 needs at least 3"),
        (["--tokens", str(held), "--dtype", "uint32"], "is outside [0, 6)"),
        (["--text", str(_write(tmp_path / "t.txt", TEXT))], "has no vocabulary"),
    ):
        assert main(["eval", "--model", str(out), *argv]) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("xsol: error:") and message in err, err


def test_cli_eval_refuses_bad_models(tmp_path, capsys, tokens):
    rng = np.random.default_rng(0)
    xsol.save(xsol.fit_explicit(rng.random((50, 10)), rng.integers(0, 3, 50)), tmp_path / "ten")
    X, y = context_windows(tokens, 1)
    checkpoint.save(xsol.stats.sparse_cooccurrence(X, y, 6), tmp_path / "stats")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "xsol.json").write_text("[1, 2")
    for argv, message in (
        (["--model", str(tmp_path / "ten"), "--dataset", "digits"],
         "have 64 features, but the model in"),
        (["--model", str(tmp_path / "ten"), "--tokens", "x.bin"], "is an image classifier"),
        (["--model", str(tmp_path / "stats"), "--tokens", "x.bin"], "holds statistics"),
        (["--model", str(tmp_path / "nowhere"), "--dataset", "digits"], "does not exist"),
        (["--model", str(tmp_path / "junk"), "--dataset", "digits"], "cannot read"),
        (["--model", str(tmp_path), "--dataset", "digits"], "xsol.json is missing"),
    ):
        assert main(["eval", *argv]) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("xsol: error:") and message in err and "Traceback" not in err, err
    with pytest.raises(SystemExit) as e:  # one data source is required
        main(["eval", "--model", str(tmp_path / "ten")])
    assert e.value.code == 2
