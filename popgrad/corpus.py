"""Character unigram and bigram statistics of a text (SPEC §2 C; paper Section 3).

The default `pi_u`, `pi_b` of model C come from tiny Shakespeare: vocabulary = sorted distinct
characters, unigram counts = character counts, bigram counts = all consecutive pairs. The counts
ship inside the package (`resources/tinyshakespeare_counts.json`), made by `count_text` from
`shared/data/tinyshakespeare.txt` (`python -m popgrad.corpus FILE OUT.json` regenerates them).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from popgrad.errors import PopgradError

DEFAULT_COUNTS = "tinyshakespeare_counts.json"


@dataclass(frozen=True)
class BigramCounts:
    """Counts of one text: `vocab[k]` is token k; `unigram` (N,), `bigram` (N, N) [prev, next]."""

    vocab: str
    unigram: np.ndarray
    bigram: np.ndarray
    source: str = ""

    @property
    def N(self) -> int:
        return len(self.vocab)

    @property
    def pi_u(self) -> np.ndarray:
        """Unigram distribution pi_u (N,)."""
        return self.unigram / self.unigram.sum()

    @property
    def pi_b(self) -> np.ndarray:
        """Bigram conditionals pi_b(j | i) (N, N), rows sum to one.

        A character that is never followed by anything (only possible for the text's last
        character) gets the unigram distribution as its row.
        """
        rows = self.bigram.sum(axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            pb = np.where(rows > 0, self.bigram / np.where(rows > 0, rows, 1), self.pi_u[None, :])
        return pb

    def to_json(self) -> dict:
        return {"vocab": self.vocab, "unigram": self.unigram.astype(int).tolist(),
                "bigram": self.bigram.astype(int).tolist(), "source": self.source}


def count_text(text: str, source: str = "") -> BigramCounts:
    """Unigram and bigram character counts of `text` (vocabulary = sorted distinct characters)."""
    if not isinstance(text, str):
        raise PopgradError(f"text must be a str, got {type(text).__name__}")
    vocab = "".join(sorted(set(text)))
    if len(vocab) < 2:
        raise PopgradError(f"text{' ' + source if source else ''} has {len(vocab)} distinct "
                           "character(s); a bigram model needs at least 2")
    index = np.full(max(map(ord, vocab)) + 1, -1, dtype=np.int64)
    index[[ord(c) for c in vocab]] = np.arange(len(vocab))
    codes = index[np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)]
    N = len(vocab)
    unigram = np.bincount(codes, minlength=N).astype(np.float64)
    bigram = np.bincount(codes[:-1] * N + codes[1:], minlength=N * N).reshape(N, N).astype(np.float64)
    return BigramCounts(vocab, unigram, bigram, source)


def count_file(path) -> BigramCounts:
    """Counts of a UTF-8 text file; clear errors for missing, empty or non-UTF-8 files."""
    p = Path(path)
    if not p.is_file():
        raise PopgradError(f"text file {str(path)!r} does not exist")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise PopgradError(f"text file {str(path)!r} is not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
    if not text:
        raise PopgradError(f"text file {str(path)!r} is empty")
    return count_text(text, source=p.name)


def load_counts(data: dict) -> BigramCounts:
    """BigramCounts from the JSON form written by `BigramCounts.to_json`."""
    return BigramCounts(data["vocab"], np.asarray(data["unigram"], dtype=np.float64),
                        np.asarray(data["bigram"], dtype=np.float64), data.get("source", ""))


def default_counts() -> BigramCounts:
    """The tiny Shakespeare counts shipped with the package (N = 65)."""
    text = resources.files("popgrad").joinpath("resources", DEFAULT_COUNTS).read_text()
    return load_counts(json.loads(text))


def main(argv=None) -> int:
    """`python -m popgrad.corpus TEXT OUT.json`: write the counts of a text file."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python -m popgrad.corpus TEXT OUT.json", file=sys.stderr)
        return 2
    counts = count_file(argv[0])
    Path(argv[1]).write_text(json.dumps(counts.to_json()))
    print(f"{counts.source}: {int(counts.unigram.sum())} characters, N = {counts.N}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
