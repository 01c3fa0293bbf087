"""Datasets: offline sources, fixed splits, CSV checks."""

from __future__ import annotations

import pytest

from engine.toolkit.data import DatasetError, load_dataset


def test_rotten_tomatoes_split_is_fixed() -> None:
    data = load_dataset("rotten-tomatoes")
    assert data.label_names == ["negative", "positive"]
    assert (len(data.train), len(data.val), len(data.test)) == (9752, 1000, 2000)
    assert not set(data.test.texts) & set(data.train.texts), "no test example in training"
    # The split never moves: pin the first test example.
    assert data.test.texts[0] == load_dataset("rotten-tomatoes").test.texts[0]


def test_bbc_news_is_five_topics() -> None:
    data = load_dataset("bbc-news")
    assert data.num_labels == 5
    assert len(data.train) + len(data.val) + len(data.test) == 2225


def test_csv_with_any_label_names(tiny_csv) -> None:
    data = load_dataset(f"csv:{tiny_csv}")
    assert data.label_names == ["neg", "pos"] and len(data.test) == 16


@pytest.mark.parametrize("content, words", [
    ("text,category\nhello,a\nbye,b\n", "needs the columns text and label"),
    ("text,label\n" + "x,a\n" * 10, "only one label"),
    ("text,label\n", "empty"),
    ("", "not a readable CSV"),
])
def test_bad_csv(tmp_path, content: str, words: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(DatasetError, match=words):
        load_dataset(f"csv:{path}")


def test_unknown_dataset_and_missing_file(tmp_path) -> None:
    with pytest.raises(DatasetError, match="unknown dataset"):
        load_dataset("imdb")
    with pytest.raises(DatasetError, match="no such file"):
        load_dataset(f"csv:{tmp_path / 'nope.csv'}")
