"""One model's attention on one sentence: maps on the original layers x heads grid, and the
prediction. Cached models come from engine/attention/loading.py."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.attention.loading import Loaded, load, model_lock
from engine.toolkit.config import LabError


@dataclass(frozen=True)
class SentenceAttention:
    """One model's attention on one sentence, on the original layers x heads grid."""

    model_id: str
    tokens: list[str]  # what the model read, specials included, after truncation
    maps: np.ndarray  # [layers, heads, tokens, tokens] float32, rows sum to 1; NaN if removed
    kept: np.ndarray  # [layers, heads] bool
    probs: np.ndarray  # [num_labels] softmax probabilities
    label_names: list[str]
    total_tokens: int  # tokens the whole sentence makes, before truncation
    max_tokens: int  # the limit applied
    special: tuple[str, str] = ("[CLS]", "[SEP]")  # the tokenizer's cls and sep tokens
    layer_index: tuple[int, ...] = ()  # original layer of each layer the model has, in order
    mapped: bool = False  # a record (kept_layers, dropped layers) gave layer_index
    classifier: bool = True  # False: a base encoder, whose prediction is a random head's

    @property
    def present_layers(self) -> int:
        """How many layers the model has (rows of `kept` it can fill)."""
        return len(self.layer_index) or int(self.kept.any(1).sum())

    @property
    def truncated(self) -> int:
        """How many tokens were cut off the end."""
        return self.total_tokens - len(self.tokens)

    @property
    def pred(self) -> int:
        return int(np.argmax(self.probs))

    @property
    def label(self) -> str:
        return self.label_names[self.pred] if self.pred < len(self.label_names) else str(self.pred)

    @property
    def confidence(self) -> float:
        return float(self.probs[self.pred])

    def removed(self) -> dict[int, list[int]]:
        """Original layer -> removed original heads (a whole layer lists every head)."""
        return {int(layer): [int(h) for h in np.flatnonzero(~row)]
                for layer, row in enumerate(self.kept) if (~row).any()}


def sentence_attention(model_id: str, text: str, max_tokens: int | None = None
                       ) -> SentenceAttention:
    """Attention maps and the prediction of `model_id` for `text` (cached model)."""
    return extract(load(model_id), text, max_tokens, model_id=model_id)


def extract(loaded: Loaded, text: str, max_tokens: int | None = None,
            model_id: str | None = None) -> SentenceAttention:
    """Run the model once on `text` with output_attentions.

    Truncates to min(max_tokens, the model's maximum) tokens. Raises LabError for an empty text
    or a model that returns no attention maps (e.g. one that only has fused SDPA kernels)."""
    import torch

    if not text or not text.strip():
        raise LabError("type a sentence to see what the heads attend to")
    tok = loaded.tokenizer
    limit = min(int(max_tokens or loaded.max_tokens), loaded.max_tokens)
    total = len(tok(text, truncation=False, verbose=False)["input_ids"])
    enc = tok(text, truncation=True, max_length=limit, return_tensors="pt")
    with model_lock, torch.inference_mode():
        try:
            out = loaded.model(**enc.to(loaded.device), output_attentions=True)
        except Exception as exc:  # any failure here means: this model gives no maps
            raise LabError(f"{loaded.model_id}: its attention maps cannot be extracted "
                           f"({type(exc).__name__}: {str(exc)[:200]})") from exc
    attentions = getattr(out, "attentions", None)
    if not attentions or any(a is None for a in attentions):
        raise LabError(f"{loaded.model_id}: its attention maps cannot be extracted (the model "
                       f"returns none: it may run fused attention kernels only); pick another "
                       f"model, or reload it with eager attention")
    n = enc["input_ids"].shape[1]
    maps = np.full((loaded.layers, loaded.heads, n, n), np.nan, dtype=np.float32)
    for layer, heads, att in zip(loaded.layer_index, loaded.kept_heads, attentions):
        if att.shape[1] != len(heads):
            raise LabError(f"{loaded.model_id}: layer {layer} returns {att.shape[1]} heads but "
                           f"its config says it keeps {len(heads)}; its pruned_heads record is "
                           f"wrong, so its heads cannot be placed")
        maps[layer, heads] = att[0].float().cpu().numpy()
    probs = torch.softmax(out.logits[0].float(), -1).cpu().numpy()
    tokens = tok.convert_ids_to_tokens(enc["input_ids"][0].tolist())
    return SentenceAttention(model_id=model_id or loaded.model_id, tokens=tokens, maps=maps,
                             kept=loaded.kept, probs=probs, label_names=loaded.label_names,
                             total_tokens=total, max_tokens=limit,
                             special=(tok.cls_token or "[CLS]", tok.sep_token or "[SEP]"),
                             layer_index=tuple(loaded.layer_index), mapped=loaded.mapped,
                             classifier=loaded.classifier)
