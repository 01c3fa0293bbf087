"""Shared fixtures: an isolated LAB_HOME per test, a tiny random BERT, a tiny CSV dataset."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("LAB_THREADS", "2")
os.environ["LAB_WORKER_AUTOSTART"] = "0"
# AppTest can leave script threads running after a test (fragments with run_every); with
# this off they cannot queue a 10-minute teacher build into a later test's database.
os.environ["LAB_BUILD_TEACHER"] = "0"
os.environ["HF_HUB_OFFLINE"] = "1"
# compiling every model for timing takes seconds each; tests that need it set it back
os.environ.setdefault("LAB_TIMING_RUNTIMES", "eager")

ROOT = Path(__file__).resolve().parent.parent

POSITIVE = ["a wonderful, moving film", "great acting and a sharp script", "i loved every minute",
            "funny, warm and clever", "a delightful surprise", "brilliant and beautiful",
            "an excellent story well told", "charming from start to finish"]
NEGATIVE = ["a dull, lifeless mess", "boring and far too long", "i hated the ending",
            "clumsy, flat and tedious", "a waste of a good cast", "awful dialogue throughout",
            "painfully slow and predictable", "the worst film this year"]


@pytest.fixture(autouse=True)
def lab_home(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory,
             monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own LAB_HOME and its own database: SQLite in LAB_HOME, or a fresh
    PostgreSQL database when LAB_TEST_DATABASE_URL names a server (tests/databases.py);
    local models may load from pytest's temporary folders."""
    from storage.db import dispose_all
    from tests import databases

    home = tmp_path / "lab"
    monkeypatch.setenv("LAB_HOME", str(home))
    monkeypatch.setenv("LAB_CACHE_DIR", str(tmp_path / "machine-cache"))
    monkeypatch.setenv("LAB_MODEL_DIRS", str(tmp_path_factory.getbasetemp()))
    server = databases.server_url()
    database = databases.create_database(server) if server else None
    if database:
        monkeypatch.setenv("LAB_DATABASE_URL", database)
    else:
        monkeypatch.delenv("LAB_DATABASE_URL", raising=False)
    dispose_all()
    yield home
    dispose_all()
    if database:
        databases.drop_database(server, database)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random BERT classifier (hidden 32, 2 layers, 4 heads, eager attention, seed 0)
    saved as a Hugging Face directory with the embedded MiniLM tokenizer."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from engine.toolkit.checkpoints import embedded_minilm_path

    out = tmp_path_factory.mktemp("tiny-bert")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=4, intermediate_size=64, max_position_embeddings=128,
                        num_labels=2, id2label={0: "negative", 1: "positive"},
                        label2id={"negative": 0, "positive": 1}, attn_implementation="eager")
    BertForSequenceClassification(config).save_pretrained(out, safe_serialization=True)
    AutoTokenizer.from_pretrained(embedded_minilm_path()).save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small two-label sentiment CSV (80 rows) that a tiny model can learn a little of."""
    rng = random.Random(0)
    rows = [(t, "pos") for t in POSITIVE] + [(t, "neg") for t in NEGATIVE]
    # 80 distinct rows (the datasets drop texts that repeat, so plain copies would leave 16)
    rows = [(f"{rows[i % 16][0]}, take {i // 16 + 1}", rows[i % 16][1]) for i in range(80)]
    rng.shuffle(rows)
    path = tmp_path_factory.mktemp("data") / "tiny.csv"
    path.write_text("text,label\n" + "\n".join(f'"{t}",{y}' for t, y in rows) + "\n")
    return path



def spy_texts(monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> list[str]:
    """Wrap `module.name`, a function called as f(model, tokenizer, texts, ...), so that every
    text it is given is recorded; returns the (growing) list of them."""
    seen: list[str] = []
    real = getattr(module, name)

    def spy(model, tokenizer, texts, *args, **kwargs):
        seen.extend(texts)
        return real(model, tokenizer, texts, *args, **kwargs)

    monkeypatch.setattr(module, name, spy)
    return seen


def run_done(job_id: int) -> dict:
    """Claim and run a queued job in this process; its row (as `show --json` prints it),
    asserted done."""
    from engine.worker import run_claimed
    from storage import jobs as store

    assert store.claim(None, job_id=job_id) is not None
    run_claimed(job_id)
    job = store.job_as_dict(store.get_job(job_id))
    assert job["status"] == "done", job["error"]
    return job
