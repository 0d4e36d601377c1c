"""Feature functions: the scalar gap bucket the serving hot path uses equals the vectorised one the
encoder uses; the text of a movie hashes the same way everywhere."""

from __future__ import annotations

import numpy as np

from ml.config import GAP_BUCKETS
from ml.features import (
    MAX_TEXT_TOKENS,
    FeatureVocabularies,
    MovieFeatures,
    Vocab,
    gap_bucket,
    gap_bucket_of,
    star_levels,
    text_bucket,
    text_tokens,
)


def test_gap_bucket_of_equals_gap_bucket_at_and_around_every_boundary() -> None:
    boundaries = [60 * (2**k - 1) for k in range(GAP_BUCKETS + 2)]  # 1 + minutes = 2**k
    seconds = sorted({max(b + d, -5) for b in boundaries for d in (-2, -1, 0, 1, 2)})
    seconds += np.random.default_rng(0).integers(0, 2**40, size=2_000).tolist()
    vectorised = gap_bucket(np.asarray(seconds, dtype=np.int64), np.ones(len(seconds), dtype=bool))
    assert [gap_bucket_of(s) for s in seconds] == vectorised.tolist()
    assert set(vectorised.tolist()) == set(range(1, GAP_BUCKETS))  # every bucket was crossed


def test_half_stars_read_as_the_star_they_reach() -> None:
    assert star_levels([0.5, 1, 1.5, 3, 3.5, 4.5, 5]).tolist() == [1, 1, 2, 3, 4, 5, 5]
    assert star_levels(np.array([1, 2, 3, 4, 5], dtype=np.float32)).tolist() == [1, 2, 3, 4, 5]


def _text_vocabs(buckets: int) -> FeatureVocabularies:
    empty = Vocab([])
    return FeatureVocabularies(
        user_id=empty, movie_id=empty, gender=empty, age=empty, occupation=empty, zip_prefix=empty,
        genre=empty, title_word=empty, year=empty, zip_prefix_length=2, text_buckets=buckets,
    )  # fmt: skip


def test_text_hashes_tags_whole_then_description_words_the_same_in_every_process() -> None:
    tokens = text_tokens("A dark, DARK tale of the sea.", ["slow burn"])
    assert tokens == ["tag:slow burn", "a", "dark", "dark", "tale", "of", "the", "sea"]
    # fixed values: a salted hash (Python's hash()) would give others in another process
    assert [text_bucket(t, 2048) for t in tokens] == [1841, 1604, 1532, 1532, 189, 507, 1511, 312]
    movies = [
        MovieFeatures("A", None, (), description="A dark, DARK tale of the sea.", tags=("slow burn",)),
        MovieFeatures("B", None, ()),
        MovieFeatures("C", None, (), description=" ".join(f"w{i}" for i in range(500))),
    ]
    text = _text_vocabs(2048).movie_arrays([None] * 3, movies)["text"]
    assert text.shape == (3, MAX_TEXT_TOKENS)
    assert text[0, :8].tolist() == [1841, 1604, 1532, 189, 507, 1511, 312, 0]  # distinct, in order
    assert not text[1].any()  # no text: padding only
    assert (text[2] > 0).all()  # a long description fills the bag up to its bound


def test_without_text_buckets_no_text_array_is_made() -> None:
    arrays = _text_vocabs(0).movie_arrays(
        [1], [MovieFeatures("A", None, (), description="words", tags=("tag",))]
    )
    assert "text" not in arrays
    old = _text_vocabs(16).to_json()
    del old["text_buckets"]  # a version saved before the text feature
    assert FeatureVocabularies.from_json(old).text_buckets == 0
    assert FeatureVocabularies.from_json(_text_vocabs(16).to_json()).text_buckets == 16
