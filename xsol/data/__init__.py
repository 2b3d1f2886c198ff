"""Data for xsol: real datasets, offline files, text, and batch streams.

Modules (one idea each):

* `idx`: read/write IDX files (the MNIST format), plain or gzipped.
* `images`: `load_images("mnist" | "fashion_mnist" | "digits")` from local
  IDX files, tensorflow-datasets, or Debian's dataset package.
* `text`: `load_text(source)`: the embedded default text (Python's
  documentation topics), files, directories, or tfds text datasets.
* `tokenizer`: the word/character splitting rules.
* `vocab`: `Vocabulary` and `tokenize(text) -> (ids, vocab)`.
* `windows`: `context_windows(ids, window)` next-token examples and the
  contiguous `split_tokens` train/held-out split.
* `streaming`: fixed-size `(X, y)` batch streams (`Batches`) over arrays,
  IDX files, text files and tfds, for one-pass statistics.
* `encoders`: what turns text into token ids: the built-in `WordEncoder`,
  a Hugging Face tokenizer file via `load_tokenizer`, the `TextEncoder`
  protocol.
* `token_counts`: the streamed vocabulary pass (`count_tokens`,
  `build_vocabulary_streaming`) over a text of any size.
* `encode`: raw text to token ids at speed in bounded memory:
  `iter_text_ids` and `encode_text_to_file` (a flat binary file of ids).
* `byte_ranges`: one large file read by worker processes, one byte range
  each, for both passes.
* `token_files`: token-id files as GPT-style pipelines write them (raw
  little-endian uint16/uint32, or `.npy`): `open_token_file` (a read-only
  memory map), `write_token_file`, `held_out_cut`.
* `token_windows`: `iter_token_windows` / `iter_token_file_windows`, the
  `context_windows` of a file (or of its training part or held-out tail) in
  chunks of bounded memory.
* `tfds_source`: lazy, optional tensorflow-datasets access.

Nothing here imports JAX or TensorFlow; tensorflow-datasets is imported only
when a tfds source is used, and Hugging Face `tokenizers` only by
`load_tokenizer`.
"""

from xsol.data import encode, encoders, token_counts, token_files, token_windows
from xsol.data.encode import encode_text_to_file, iter_text_ids
from xsol.data.encoders import HFTokenizerEncoder, TextEncoder, WordEncoder, load_tokenizer
from xsol.data.idx import IdxHeader, iter_idx_chunks, read_idx, read_idx_header, write_idx
from xsol.data.images import (
    DATA_DIR_ENV,
    IMAGE_DATASETS,
    DatasetNotFoundError,
    ImageData,
    find_idx_files,
    load_images,
)
from xsol.data.streaming import (
    Batches,
    SizedBatches,
    iter_array_batches,
    iter_idx_batches,
    iter_text_windows,
    iter_tfds_batches,
    rebatch,
)
from xsol.data.text import (
    TFDS_TEXT_DATASETS,
    TextDecodeError,
    embedded_text,
    iter_text_chunks,
    load_text,
)
from xsol.data.tfds_source import TfdsUnavailableError
from xsol.data.token_counts import build_vocabulary_streaming, count_tokens
from xsol.data.token_files import TokenFileError, held_out_cut, open_token_file, write_token_file
from xsol.data.token_windows import iter_token_file_windows, iter_token_windows
from xsol.data.tokenizer import split_text
from xsol.data.vocab import UNK, Vocabulary, build_vocabulary, tokenize
from xsol.data.windows import context_windows, split_tokens

__all__ = [
    "IdxHeader",
    "read_idx",
    "read_idx_header",
    "iter_idx_chunks",
    "write_idx",
    "DATA_DIR_ENV",
    "IMAGE_DATASETS",
    "DatasetNotFoundError",
    "ImageData",
    "find_idx_files",
    "load_images",
    "TFDS_TEXT_DATASETS",
    "embedded_text",
    "load_text",
    "iter_text_chunks",
    "TextDecodeError",
    "TfdsUnavailableError",
    "split_text",
    "UNK",
    "Vocabulary",
    "build_vocabulary",
    "tokenize",
    "context_windows",
    "split_tokens",
    "Batches",
    "SizedBatches",
    "rebatch",
    "iter_array_batches",
    "iter_idx_batches",
    "iter_text_windows",
    "iter_tfds_batches",
    *token_files.__all__,
    *token_windows.__all__,
    *encoders.__all__,
    *token_counts.__all__,
    *encode.__all__,
]
