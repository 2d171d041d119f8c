"""The BM25 encoder's term weights: k1 = 0.9 and b = 0.5 (see `knowledge.sparse`), checked on the numbers."""

from __future__ import annotations

import pytest

from knowledge.sparse import AVERAGE_CHUNK_TOKENS, K1, B, Bm25Encoder


def weight(encoder: Bm25Encoder, text: str) -> float:
    """The weight of the text's first term (every term of these texts weighs the same)."""
    return encoder.document(text).values[0]


def test_term_weights_follow_bm25_with_k1_0_9_and_b_0_5() -> None:
    encoder = Bm25Encoder()
    assert (K1, B) == (0.9, 0.5)
    # one mention in a chunk twice the average length: (k1 + 1) / (1 + k1 * (1 - b + b * 2))
    long_chunk = " ".join(f"word{i}" for i in range(int(2 * AVERAGE_CHUNK_TOKENS)))
    assert weight(encoder, long_chunk) == pytest.approx(1.9 / (1 + 0.9 * 1.5), rel=1e-4)
    # repetition saturates below k1 + 1 = 1.9 (the library's k1 = 1.2 lets it climb to 2.2)
    assert 1.8 < weight(encoder, "hotspot " * 20) < 1.9


def test_a_long_section_is_less_to_blame_for_its_length_than_with_the_library_defaults() -> None:
    short, long = "mobile hotspot", "mobile hotspot " + " ".join(f"step{i}" for i in range(150))
    ours, library = Bm25Encoder(), Bm25Encoder(k1=1.2, b=0.75)
    assert weight(ours, long) / weight(ours, short) > weight(library, long) / weight(library, short) + 0.1
