"""Deterministic synthetic data in the ML-1M file format, with taste structure a model can learn; on
request, with descriptions and tags that carry the movies' tastes, in the generic CSV layout, and the
hidden tastes themselves, so that a simulation can ask how much a user likes any movie."""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ml.movielens.format import AGE_BUCKETS, GENRES, OCCUPATIONS
from ml.movielens.layouts import ENCODING, ML1M_SEPARATOR

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

TASTE_DIM = 8  # size of the hidden user and movie taste vectors
FIRST_TIMESTAMP = 956_703_932  # 2000-04-25, the first rating in ML-1M
LAST_TIMESTAMP = 1_046_454_590  # 2003-02-28, the last rating in ML-1M

# Shares observed in ML-1M (counts of users, movies or ratings), in the order of the format constants.
_FEMALE_SHARE = 0.283
_AGE_COUNTS = (222, 1103, 2096, 1193, 550, 496, 380)
_OCCUPATION_COUNTS = (
    711, 528, 267, 173, 759, 112, 236, 679, 17, 92, 195, 129, 388, 142, 302, 144, 241, 502, 70, 72, 281,
)  # fmt: skip
_GENRE_COUNTS = (503, 283, 105, 251, 1200, 211, 127, 1603, 68, 44, 343, 114, 106, 471, 276, 492, 143, 68)
_GENRES_PER_MOVIE = (0.55, 0.33, 0.12)  # share of movies with 1, 2 and 3 genres
_STAR_SHARES = (0.056, 0.108, 0.261, 0.349, 0.226)

# Genres a group leans towards: these shift the group's taste vectors towards those genres' vectors.
_GENDER_LEANINGS: dict[str, dict[str, float]] = {
    "F": {"Romance": 1.0, "Drama": 0.5, "Musical": 0.6, "Children's": 0.3},
    "M": {"Action": 0.8, "Sci-Fi": 0.7, "War": 0.5, "Western": 0.4, "Horror": 0.3},
}
_AGE_LEANINGS: dict[int, dict[str, float]] = {
    1: {"Animation": 1.0, "Children's": 1.0, "Comedy": 0.5},
    18: {"Comedy": 0.6, "Horror": 0.6, "Action": 0.4},
    25: {"Comedy": 0.3, "Thriller": 0.4, "Sci-Fi": 0.3},
    35: {"Drama": 0.3, "Crime": 0.3, "Thriller": 0.3},
    45: {"Drama": 0.5, "Mystery": 0.4},
    50: {"Drama": 0.6, "War": 0.4, "Film-Noir": 0.4},
    56: {"Drama": 0.6, "War": 0.6, "Western": 0.6, "Film-Noir": 0.6, "Musical": 0.4},
}

_ADJECTIVES = (
    "Silent", "Last", "Broken", "Golden", "Dark", "Hidden", "Lonely", "Crimson", "Wild", "Frozen",
    "Secret", "Burning", "Quiet", "Distant", "Lost", "Electric", "Midnight", "Savage", "Bitter", "Endless",
    "Little", "Sweet", "Fallen", "Iron", "Velvet", "Hollow", "Eternal", "Restless", "Brave", "Strange",
)  # fmt: skip
_NOUNS = (
    "Harbor", "River", "Kingdom", "Stranger", "Road", "Garden", "Summer", "City", "Heart", "Storm",
    "Island", "Mirror", "Shadow", "Train", "Highway", "Witness", "Empire", "Dream", "Game", "Season",
    "Promise", "Night", "Circus", "Letter", "Frontier", "Machine", "Ghost", "Hunter", "Sister", "Tide",
    "Café", "Señor", "Fiancée", "Matador",
)  # fmt: skip
_TITLE_FORMS = ("{a} {n}", "The {a} {n}", "{a} {n}, The", "{n} of the {m}", "{n} in the {m}")
_TITLE_WORDS = (_TITLE_FORMS, _ADJECTIVES, _NOUNS, _NOUNS)  # drawn for each title: its form, a, n and m

# Text: words and tags each lean towards a direction of taste space, so they tell of a movie's taste as
# its ratings do. Filler words carry nothing.
_TASTE_WORDS = (
    "harbour", "orchard", "cipher", "lantern", "meridian", "quarry", "ballad", "compass", "ember",
    "glacier", "labyrinth", "monsoon", "nomad", "oracle", "pilgrim", "quartet", "relic", "saga",
    "tapestry", "vigil", "wager", "zenith", "archive", "bramble", "citadel", "dynasty", "estate",
    "furnace", "gallows", "heirloom", "inkwell", "jubilee", "kiln", "lagoon", "mirage", "nocturne",
    "outpost", "parlour", "quiver", "rampart", "sonnet", "turbine", "undertow", "voyage", "windmill",
    "yearling", "asylum", "beacon",
)  # fmt: skip
_FILLER_WORDS = (
    "a", "the", "of", "and", "in", "with", "story", "film", "who", "about", "life", "world", "their",
    "new", "finds", "must", "when", "after", "two", "one",
)  # fmt: skip
_TAGS = (
    "slow burn", "twist ending", "feel-good", "bleak", "quotable", "visually stunning", "cult", "witty",
    "atmospheric", "tearjerker", "underrated", "overrated", "great soundtrack", "based on a book",
    "cerebral", "campy", "gritty", "whimsical", "nostalgic", "epic", "quirky", "violent", "heartwarming",
    "dialogue driven", "nonlinear", "road trip", "ensemble cast", "true story", "coming of age", "dystopia",
)  # fmt: skip
_TEXT_SHARPNESS = 4.0  # how strongly a word or tag follows its direction (logit per unit of cosine)
_DESCRIBED_SHARE = 0.85  # movies with a description; the others have none (and tags only, if any)

_USER_CHUNK = 512  # users whose choice keys are drawn at once; bounds memory at chunk x movies floats
_CHOICE_TASTE = 1.5  # weight of taste against log popularity when a user picks the next movie
_STAR_NOISE = 0.8  # spread of a rating's score around its user's taste, bias and the movie's quality
HIDDEN_FILE = "hidden.npz"  # the hidden tastes, beside the data files (write_synthetic's `hidden`)


@dataclass(frozen=True)
class HiddenTastes:
    """What made the ratings and is not in the data files: every user's and movie's taste vector, and
    the biases and star thresholds that turned taste into stars."""

    movie_ids: IntArray  # (movies,) ascending, the ids the data files give the rows below
    user_taste: FloatArray  # (users, TASTE_DIM); user id u is row u - 1
    movie_taste: FloatArray  # (movies, TASTE_DIM)
    affinity_mean: float  # of user . movie over every pair, which affinity standardises by
    affinity_scale: float
    user_bias: FloatArray  # (users,) how generously each user rates
    quality: FloatArray  # (movies,) how well each movie is liked by everyone
    thresholds: FloatArray  # (4,) scores from which a rating has 2, 3, 4 and 5 stars

    def affinity(self, user_ids: IntArray, movie_ids: IntArray) -> FloatArray:
        """Return each (user id, movie id) pair's standardised taste match, by which users chose what
        they watched (about zero mean and unit spread over all pairs)."""
        users, movies = self._rows(user_ids, movie_ids)
        match = np.einsum("ij,ij->i", self.user_taste[users], self.movie_taste[movies])
        return (match - self.affinity_mean) / self.affinity_scale

    def stars(self, rng: np.random.Generator, user_ids: IntArray, movie_ids: IntArray) -> IntArray:
        """Return 1-5 stars each user would give each movie, drawn as the generator drew the ratings."""
        users, movies = self._rows(user_ids, movie_ids)
        scores = _star_scores(
            rng, self.affinity(user_ids, movie_ids), self.user_bias[users], self.quality[movies]
        )
        return 1 + np.searchsorted(self.thresholds, scores).astype(np.int64)

    def _rows(self, user_ids: IntArray, movie_ids: IntArray) -> tuple[IntArray, IntArray]:
        rows = np.minimum(np.searchsorted(self.movie_ids, movie_ids), self.movie_ids.size - 1)
        if np.any(self.movie_ids[rows] != movie_ids):
            raise ValueError("a movie id is not one of the generated movies")
        return np.asarray(user_ids) - 1, rows

    def save(self, path: Path) -> None:
        np.savez(
            path, movie_ids=self.movie_ids, user_taste=self.user_taste, movie_taste=self.movie_taste,
            affinity_mean=self.affinity_mean, affinity_scale=self.affinity_scale, user_bias=self.user_bias,
            quality=self.quality, thresholds=self.thresholds,
        )  # fmt: skip

    @classmethod
    def load(cls, directory: Path) -> HiddenTastes:
        """Return the hidden tastes write_synthetic(hidden=True) wrote into directory."""
        with np.load(directory / HIDDEN_FILE) as saved:
            arrays = {name: saved[name] for name in saved.files}
        return cls(**arrays | {name: float(arrays[name]) for name in ("affinity_mean", "affinity_scale")})


def write_synthetic(
    directory: Path,
    *,
    users: int = 600,
    movies: int = 400,
    ratings_per_user: tuple[int, int] = (20, 120),
    seed: int = 0,
    text: bool = False,
    hidden: bool = False,
) -> Path:
    """Write users.dat, movies.dat and ratings.dat in the ML-1M format into directory and return it;
    with text, the same data in the generic CSV layout, plus descriptions and tags drawn from taste;
    with hidden, the tastes that made the ratings too (HIDDEN_FILE, read by HiddenTastes.load)."""
    low, high = ratings_per_user
    if users < 1 or movies < 1:
        raise ValueError(f"need at least one user and one movie, not {users} users and {movies} movies")
    if not 1 <= low <= high:
        raise ValueError(
            f"ratings_per_user must be (low, high) with 1 <= low <= high, not {ratings_per_user}"
        )
    if low > movies:
        raise ValueError(f"each user must rate {low} distinct movies but there are only {movies}")
    high = min(high, movies)
    rng = np.random.default_rng(seed)

    gender, age, occupation, zips = _demographics(rng, users)
    years, member = _catalogue(rng, movies)
    titles = _titles(rng, years)
    movie_ids = np.sort(rng.choice(np.arange(1, movies + movies // 64 + 1), size=movies, replace=False))
    user_taste, movie_taste = _tastes(rng, gender, age, occupation, member)

    # Popularity is Zipf-like over a random order, with recent films a little more popular.
    popularity_order = np.argsort(rng.normal(size=movies) + 0.04 * (years - 1990))[::-1]
    log_popularity = np.empty(movies)
    log_popularity[popularity_order] = -0.7 * np.log1p(np.arange(movies))
    counts = low + np.floor((high - low + 1) * rng.beta(0.7, 2.0, size=users)).astype(np.int64)
    counts = np.minimum(counts, high)
    rater, movie = _choices(rng, user_taste, movie_taste, log_popularity, counts)
    stars, tastes = _stars(rng, user_taste, movie_taste, log_popularity, rater, movie, movie_ids)
    timestamps = _timestamps(rng, counts)

    directory.mkdir(parents=True, exist_ok=True)
    user_rows = zip(
        range(1, users + 1), ("FM"[g] for g in gender.tolist()), age.tolist(), occupation.tolist(), zips,
        strict=True,
    )  # fmt: skip
    genres = ["|".join(np.asarray(GENRES)[row]) for row in member]
    # Like ML-1M, the file is grouped by user but not in time order: readers must sort by timestamp.
    order = np.lexsort((movie_ids[movie], rater))
    columns = (rater[order] + 1, movie_ids[movie][order], stars[order], timestamps[order])
    rating_rows = zip(*(c.tolist() for c in columns), strict=True)
    if text:
        # A generator of its own, so that the data without text is the same either way.
        descriptions, tags = _texts(np.random.default_rng([seed, 1]), movie_taste)
        movie_rows = zip(movie_ids.tolist(), titles, years.tolist(), genres, descriptions, tags, strict=True)
        write_csv(directory / "users.csv", ("user_id", "gender", "age", "occupation", "zip_code"), user_rows)
        write_csv(directory / "movies.csv", ("movie_id", "title", "year", "genres", "description", "tags"),
                   movie_rows)  # fmt: skip
        write_csv(directory / "ratings.csv", ("user_id", "movie_id", "rating", "timestamp"), rating_rows)
    else:
        _write(directory / "users.dat", user_rows)
        _write(directory / "movies.dat", zip(movie_ids.tolist(), titles, genres, strict=True))
        _write(directory / "ratings.dat", rating_rows)
    if hidden:
        tastes.save(directory / HIDDEN_FILE)
    return directory


def _write(path: Path, rows: Iterable[Sequence[object]]) -> None:
    """Write rows in the ML-1M format: fields separated by ML1M_SEPARATOR, in its encoding."""
    path.write_bytes("".join(ML1M_SEPARATOR.join(map(str, row)) + "\n" for row in rows).encode(ENCODING))


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """Write a UTF-8 CSV file with a header line, as the CSV layouts read it."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def _texts(rng: np.random.Generator, movie_taste: FloatArray) -> tuple[list[str], list[str]]:
    """Return each movie's description ("" for none) and `|`-separated tags, drawn from its taste:
    words and tags by their direction's cosine with it (see _odds), filler words at random between."""
    unit = movie_taste / np.linalg.norm(movie_taste, axis=1, keepdims=True)  # (movies, dim)
    n = unit.shape[0]
    word_odds = _odds(rng, unit, len(_TASTE_WORDS))  # (movies, words)
    tag_odds = _odds(rng, unit, len(_TAGS))  # (movies, tags)
    described = rng.random(n) < _DESCRIBED_SHARE
    lengths = rng.integers(6, 16, size=n)
    tag_counts = rng.integers(0, 5, size=n)
    descriptions: list[str] = []
    tags: list[str] = []
    for m in range(n):
        words = []
        for taste_word in rng.choice(len(_TASTE_WORDS), size=int(lengths[m]), p=word_odds[m]).tolist():
            if rng.random() < 0.5:
                words.append(_FILLER_WORDS[int(rng.integers(len(_FILLER_WORDS)))])
            words.append(_TASTE_WORDS[taste_word])
        descriptions.append(f"{' '.join(words).capitalize()}." if described[m] else "")
        chosen = rng.choice(len(_TAGS), size=int(tag_counts[m]), replace=False, p=tag_odds[m])
        tags.append("|".join(_TAGS[t] for t in chosen.tolist()))
    return descriptions, tags


def _odds(rng: np.random.Generator, unit: FloatArray, count: int) -> FloatArray:
    """Return (movies, count) probabilities of `count` items with random directions in taste space."""
    directions = rng.normal(size=(count, unit.shape[1]))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    logits = _TEXT_SHARPNESS * unit @ directions.T
    odds = np.exp(logits - logits.max(axis=1, keepdims=True))
    return odds / odds.sum(axis=1, keepdims=True)


def _shares(counts: tuple[int, ...] | tuple[float, ...]) -> FloatArray:
    array = np.asarray(counts, dtype=np.float64)
    return array / array.sum()


def _demographics(rng: np.random.Generator, n: int) -> tuple[IntArray, IntArray, IntArray, list[str]]:
    """Return gender (0 F, 1 M), age bucket, occupation and zip code of n users."""
    gender = (rng.random(n) >= _FEMALE_SHARE).astype(np.int64)
    age = np.asarray(list(AGE_BUCKETS))[rng.choice(len(AGE_BUCKETS), size=n, p=_shares(_AGE_COUNTS))]
    occupation = rng.choice(len(OCCUPATIONS), size=n, p=_shares(_OCCUPATION_COUNTS))
    # Occupation follows age where ML-1M shows it: children at school, the oldest retired.
    override = rng.random(n)
    occupation = np.where((age == 1) & (override < 0.6), 10, occupation)
    occupation = np.where((age == 56) & (override < 0.4), 13, occupation)
    occupation = np.where((age != 1) & (occupation == 10), 4, occupation)
    zips = [f"{z:05d}" for z in rng.integers(0, 100_000, size=n).tolist()]
    return gender, age, occupation, zips


def _catalogue(rng: np.random.Generator, n: int) -> tuple[IntArray, npt.NDArray[np.bool_]]:
    """Return release years (1920-2000, mostly recent) and a (movies, genres) membership matrix."""
    years = 2000 - np.floor(rng.exponential(11.0, size=n)).astype(np.int64) % 81
    per_movie = 1 + rng.choice(len(_GENRES_PER_MOVIE), size=n, p=_shares(_GENRES_PER_MOVIE))
    # Gumbel top-k: each movie's genres are drawn without replacement, weighted by ML-1M frequency.
    keys = np.log(_shares(_GENRE_COUNTS)) + rng.gumbel(size=(n, len(GENRES)))
    rank = np.argsort(np.argsort(-keys, axis=1), axis=1)
    return years, rank < per_movie[:, None]


def _titles(rng: np.random.Generator, years: IntArray) -> list[str]:
    """Return one title per movie, "Silent Harbor, The (1987)" style, unique within the catalogue."""
    words = [rng.integers(0, k, size=years.size).tolist() for k in map(len, _TITLE_WORDS)]
    titles: list[str] = []
    seen: dict[str, int] = {}
    for form, a, n1, n2, year in zip(*words, years.tolist(), strict=True):
        name = _TITLE_FORMS[form].format(a=_ADJECTIVES[a], n=_NOUNS[n1], m=_NOUNS[n2])
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:  # a repeated name becomes a sequel
            name = f"{name} {seen[name]}"
        titles.append(f"{name} ({year})")
    return titles


def _leaning_vector(leanings: dict[str, float]) -> FloatArray:
    return np.asarray([leanings.get(genre, 0.0) for genre in GENRES])


def _tastes(
    rng: np.random.Generator,
    gender: IntArray,
    age: IntArray,
    occupation: IntArray,
    member: npt.NDArray[np.bool_],
) -> tuple[FloatArray, FloatArray]:
    """Return (users, TASTE_DIM) and (movies, TASTE_DIM) taste vectors tied to genres and demographics."""
    genre_taste = rng.normal(size=(len(GENRES), TASTE_DIM))  # (genres, dim)
    movie_taste = member @ genre_taste / member.sum(axis=1, keepdims=True)
    movie_taste += 0.5 * rng.normal(size=movie_taste.shape)  # (movies, dim)
    gender_shift = np.stack([_leaning_vector(_GENDER_LEANINGS[g]) for g in "FM"]) @ genre_taste
    age_index = np.searchsorted(np.asarray(list(AGE_BUCKETS)), age)
    age_shift = np.stack([_leaning_vector(_AGE_LEANINGS[a]) for a in AGE_BUCKETS]) @ genre_taste
    occupation_shift = 0.3 * rng.normal(size=(len(OCCUPATIONS), TASTE_DIM))
    user_taste = gender_shift[gender] + age_shift[age_index] + occupation_shift[occupation]
    user_taste += rng.normal(size=user_taste.shape)  # (users, dim)
    return user_taste, movie_taste


def _affinity_scale(user_taste: FloatArray, movie_taste: FloatArray) -> tuple[float, float]:
    """Return the mean and standard deviation of user . movie over all pairs, without the full matrix."""
    mean = float(user_taste.mean(axis=0) @ movie_taste.mean(axis=0))
    second = float(np.trace((user_taste.T @ user_taste) @ (movie_taste.T @ movie_taste)))
    second /= user_taste.shape[0] * movie_taste.shape[0]
    return mean, math.sqrt(max(second - mean * mean, 1e-12))


def _choices(
    rng: np.random.Generator,
    user_taste: FloatArray,
    movie_taste: FloatArray,
    log_popularity: FloatArray,
    counts: IntArray,
) -> tuple[IntArray, IntArray]:
    """Return (user index, movie index) of each rating, each user's movies in the order watched: picked
    one by one among the unseen with odds popularity x exp(affinity), which Gumbel top-k draws at once."""
    mean, scale = _affinity_scale(user_taste, movie_taste)
    n_movies = movie_taste.shape[0]
    picks: list[IntArray] = []
    for start in range(0, user_taste.shape[0], _USER_CHUNK):
        chunk = slice(start, start + _USER_CHUNK)
        affinity = (user_taste[chunk] @ movie_taste.T - mean) / scale  # (chunk, movies)
        keys = log_popularity + _CHOICE_TASTE * affinity + rng.gumbel(size=affinity.shape)
        most = int(counts[chunk].max())
        top = np.argpartition(-keys, most - 1, axis=1)[:, :most] if most < n_movies else np.argsort(-keys)
        top = np.take_along_axis(top, np.argsort(-np.take_along_axis(keys, top, axis=1), axis=1), axis=1)
        picks.append(top[np.arange(most) < counts[chunk, None]])
    return np.repeat(np.arange(counts.size), counts), np.concatenate(picks)


def _stars(
    rng: np.random.Generator,
    user_taste: FloatArray,
    movie_taste: FloatArray,
    log_popularity: FloatArray,
    rater: IntArray,
    movie: IntArray,
    movie_ids: IntArray,
) -> tuple[IntArray, HiddenTastes]:
    """Return 1-5 stars from taste match, user and movie biases and noise, with ML-1M's star shares,
    and the tastes, biases and thresholds that gave them."""
    mean, scale = _affinity_scale(user_taste, movie_taste)
    affinity = (np.einsum("ij,ij->i", user_taste[rater], movie_taste[movie]) - mean) / scale
    user_bias: FloatArray = 0.4 * rng.normal(size=int(user_taste.shape[0]))
    quality: FloatArray = 0.5 * rng.normal(size=int(movie_taste.shape[0]))
    quality += 0.1 * (log_popularity - log_popularity.mean())  # popular films are a little better liked
    score = _star_scores(rng, affinity, user_bias[rater], quality[movie])
    thresholds = np.quantile(score, np.cumsum(_STAR_SHARES)[:-1])
    tastes = HiddenTastes(movie_ids, user_taste, movie_taste, mean, scale, user_bias, quality, thresholds)
    return 1 + np.searchsorted(thresholds, score).astype(np.int64), tastes


def _star_scores(
    rng: np.random.Generator, affinity: FloatArray, user_bias: FloatArray, quality: FloatArray
) -> FloatArray:
    """Return the score each rating's stars are cut from: taste match, biases and noise."""
    return affinity + user_bias + quality + _STAR_NOISE * rng.normal(size=affinity.shape[0])


def _timestamps(rng: np.random.Generator, counts: IntArray) -> IntArray:
    """Return strictly increasing timestamps within each user's run of counts, in bursty sessions."""
    users = counts.shape[0]
    span = LAST_TIMESTAMP - FIRST_TIMESTAMP
    start = FIRST_TIMESTAMP + np.floor(span * rng.beta(0.6, 4.0, size=users)).astype(np.int64)
    room = LAST_TIMESTAMP - start - counts
    duration = np.minimum(np.floor(rng.exponential(60 * 86_400, size=users)).astype(np.int64), room)
    gaps = rng.pareto(1.2, size=int(counts.sum()))  # heavy-tailed: many quick ratings, a few long pauses
    ends = np.cumsum(counts)
    firsts = ends - counts
    total = np.cumsum(gaps)
    before = np.concatenate(([0.0], total))[firsts]
    rater = np.repeat(np.arange(users), counts)
    fraction = (total - before[rater]) / (total[ends - 1] - before)[rater]
    position = np.arange(total.shape[0]) - firsts[rater]
    return start[rater] + np.floor(fraction * duration[rater]).astype(np.int64) + position
