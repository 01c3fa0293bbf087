"""Attention maps, their comparison, bertviz views that work offline, and head ablation.

The Attention page's model work happens here, on a model loaded once and cached by its path
(a second sentence on the same model reuses it). Maps are indexed by ORIGINAL layer and head:
a pruned model's kept heads go back to their original places and removed heads are NaN, so
two models' grids line up cell by cell. Nothing here imports streamlit; torch is imported
inside the functions that need it, so reading head importance stays cheap.

One module per part; import the names below from `engine.attention`:

- loading.py: the cached model (`load`, `prepare`, `Loaded`) and how a pruned model's layers
  and heads map back to the original grid.
- maps.py: one sentence's attention maps and prediction (`extract`, `SentenceAttention`).
- compare.py: two models' heads against each other (`divergence`) and what each head mostly
  attends to (`head_summary`).
- views.py: bertviz's head and model views as standalone HTML that renders offline.
- ablation.py: what-if re-scoring of the test split with chosen heads switched off (`ablate`).
- stored.py: facts read from stored jobs (`head_importance`, `parent_of`).
"""

from engine.attention.ablation import Ablation, ablate, mcnemar_exact, paired_interval
from engine.attention.compare import (
    DOMINANT_SHARE,
    divergence,
    head_summary,
    layer_alignment,
    layer_note,
)
from engine.attention.loading import (
    CACHED_MODELS,
    DEFAULT_EVAL_LENGTH,
    Loaded,
    clear_cache,
    load,
    prepare,
)
from engine.attention.maps import SentenceAttention, extract, sentence_attention
from engine.attention.stored import head_importance, own_head_importance, parent_of
from engine.attention.views import (
    MODEL_VIEW_LINES,
    VIEW_TOKENS,
    VIEW_WEIGHTS,
    view_window,
    views_html,
)

__all__ = [
    "BASE_ENCODER", "CACHED_MODELS", "DEFAULT_EVAL_LENGTH", "DOMINANT_SHARE", "MODEL_VIEW_LINES",
    "VIEW_TOKENS", "VIEW_WEIGHTS", "Ablation", "Loaded", "SentenceAttention", "ablate",
    "clear_cache", "divergence", "extract", "head_importance", "head_summary", "layer_alignment",
    "layer_note", "load", "mcnemar_exact", "own_head_importance", "paired_interval",
    "parent_of", "prepare", "sample_sentences", "sentence_attention", "view_window",
    "views_html",
]

BASE_ENCODER = "minilm-l6"  # offered before any job has run: real attention, no classifier


def sample_sentences(dataset_id: str, n: int = 100) -> list[str]:
    """The first `n` texts of a dataset's test split (for the page's sentence picker)."""
    from engine.toolkit.data import load_dataset

    return list(load_dataset(dataset_id).test.texts[:n])
