"""Attention maps, their comparison, bertviz views that work offline, and head ablation.

The Attention page's model work happens here, on a model loaded once and cached by its path
(a second sentence on the same model reuses it). Maps are indexed by ORIGINAL layer and head:
a pruned model's kept heads go back to their original places and removed heads are NaN, so
two models' grids line up cell by cell. Nothing here imports streamlit; torch is imported
inside the functions that need it, so reading head importance stays cheap.

Pruned models (engine/pruning.py): `config.pruned_heads` maps a layer (as the saved model
numbers it) to the original numbers of its removed heads; dropped layers are read from
`kept_layers` (the parent's layer numbers that remain) or `dropped_layers` / `pruned_layers`,
on the config, in lab_meta.json or in the notes (metrics) of the job that made the model. So
"original" means the parent's numbering, which is what a side-by-side comparison needs.
"""

from __future__ import annotations

import functools
import html
import importlib.util
import json
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.config import LabError

CACHED_MODELS = 4  # two side by side, plus room to switch back without reloading
DEFAULT_EVAL_LENGTH = 64  # EvaluateConfig's default max_length, for models with no record
PATTERNS = ("[CLS]", "[SEP]", "previous", "next", "self")
DOMINANT_SHARE = 0.5  # a head "mostly attends to" a pattern when it gets half the mass or more

_cache: OrderedDict[str, Loaded] = OrderedDict()
# One lock for every use of a cached model: Streamlit serves sessions from several threads,
# and ablation hooks on a shared model must never leak into another session's forward pass.
_lock = threading.RLock()


@dataclass
class Loaded:
    """A model ready for attention work, with its layers and heads mapped to original ones."""

    model_id: str
    model: Any  # torch.nn.Module, eval mode, eager attention
    tokenizer: Any
    layers: int  # original layer count (rows of every grid)
    heads: int  # original heads per layer (columns of every grid)
    layer_index: list[int]  # original index of each layer the model still has
    kept_heads: list[list[int]]  # per present layer: original indices of its heads, in order
    label_names: list[str]
    max_tokens: int  # the longest input the model takes (tokens, specials included)
    eval_length: int  # tokens per example when scoring (the length it was evaluated at)
    dataset: str | None  # the dataset it was trained or evaluated on, when known
    device: str = "cpu"
    # (dataset id, examples) -> predictions with every head on: the reference of every
    # what-if, computed once per model (it goes with the model when the cache drops it)
    baselines: dict[tuple[str, int], np.ndarray] = field(default_factory=dict)

    @property
    def kept(self) -> np.ndarray:
        """[layers, heads] bool: True where the model still has that head."""
        grid = np.zeros((self.layers, self.heads), dtype=bool)
        for layer, heads in zip(self.layer_index, self.kept_heads):
            grid[layer, heads] = True
        return grid

    @property
    def head_dim(self) -> int:
        cfg = self.model.config
        return cfg.hidden_size // cfg.num_attention_heads


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


# --------------------------------------------------------------------------- loading


def load(model_id: str) -> Loaded:
    """The model `model_id` with eager attention, from the cache when it was loaded before.

    Keyed by the model's path, so `default` and `job:1` (the same directory) share one copy."""
    from engine.models import resolve

    ref = resolve(model_id)
    with _lock:
        hit = _cache.get(ref.path)
        if hit is not None:
            _cache.move_to_end(ref.path)
            return hit
        loaded = _load(ref)
        _cache[ref.path] = loaded
        while len(_cache) > CACHED_MODELS:
            _cache.popitem(last=False)
        return loaded


def clear_cache() -> None:
    with _lock:
        _cache.clear()


def _load(ref) -> Loaded:
    from engine import device as dev
    from engine.models import load_classifier, load_tokenizer, read_meta
    from storage import jobs as store

    device = dev.setup()
    model = load_classifier(ref, eager_attention=True).to(device)
    tokenizer = load_tokenizer(ref)
    meta = read_meta(ref.path) if ref.source not in ("preset", "hub") else {}
    row = store.find_model(ref.id) if ref.source == "job" else None
    info = (row.info or {}) if row is not None else {}
    notes: dict[str, Any] = {}
    if ref.job_id is not None:  # a layer-dropping prune job records kept_layers in its notes
        try:
            metrics = store.job_as_dict(store.get_job(ref.job_id))["metrics"]
            notes = {k: metrics[k] for k in ("kept_layers", "dropped_layers") if metrics.get(k)}
        except store.JobNotFound:
            pass
    return prepare(model, tokenizer, ref.id, meta={**info, **notes, **meta}, device=device)


def prepare(model, tokenizer, model_id: str, meta: dict[str, Any] | None = None,
            device: str = "cpu") -> Loaded:
    """Map a loaded classifier's layers and heads to the original grid (see the module doc)."""
    meta = meta or {}
    cfg = model.config
    present = len(_encoder_layers(model))
    layer_index = _layer_index(cfg, meta, present)
    total_heads = cfg.num_attention_heads
    pruned = {int(k): {int(h) for h in v} for k, v in (getattr(cfg, "pruned_heads", None)
                                                      or {}).items()}
    kept_heads = [[h for h in range(total_heads) if h not in pruned.get(i, set())]
                  for i in range(present)]
    layers = max([max(layer_index) + 1 if layer_index else 0,
                  int(meta.get("original_layers") or 0), present])
    labels = [str(cfg.id2label[i]) if cfg.id2label and i in cfg.id2label else str(i)
              for i in range(cfg.num_labels)]
    positions = getattr(cfg, "max_position_embeddings", None) or 512
    tok_max = getattr(tokenizer, "model_max_length", None) or positions
    return Loaded(model_id=model_id, model=model, tokenizer=tokenizer, layers=layers,
                  heads=total_heads, layer_index=layer_index, kept_heads=kept_heads,
                  label_names=labels, max_tokens=int(min(positions, tok_max)),
                  eval_length=int(meta.get("max_length") or DEFAULT_EVAL_LENGTH),
                  dataset=meta.get("dataset"), device=device)


def _layer_index(cfg, meta: dict[str, Any], present: int) -> list[int]:
    kept = getattr(cfg, "kept_layers", None) or meta.get("kept_layers")
    if kept:
        assert len(kept) == present, f"kept_layers lists {len(kept)} layers, model has {present}"
        return [int(i) for i in kept]
    removed = (getattr(cfg, "pruned_layers", None) or meta.get("pruned_layers")
               or meta.get("dropped_layers"))
    if removed:
        gone = {int(i) for i in removed}
        return [i for i in range(present + len(gone)) if i not in gone]
    return list(range(present))


def _encoder_layers(model) -> list:
    """The transformer blocks, in order (BERT: encoder.layer; DistilBERT: transformer.layer)."""
    base = model.base_model
    for owner in ("encoder", "transformer"):
        blocks = getattr(getattr(base, owner, None), "layer", None)
        if blocks is not None:
            return list(blocks)
    raise LabError(f"{type(model).__name__}: the lab finds no encoder layers in this model, "
                   f"so its attention cannot be extracted; use a BERT-family classifier")


def _out_projection(block):
    """The linear layer that mixes the heads' outputs (its input is [.., heads * head_dim])."""
    att = block.attention
    proj = getattr(getattr(att, "output", None), "dense", None) or getattr(att, "out_lin", None)
    if proj is None:
        raise LabError("this model's attention blocks have no output projection the lab "
                       "knows (BERT's attention.output.dense); heads cannot be switched off")
    return proj


# --------------------------------------------------------------------------- extraction


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
    with _lock, torch.inference_mode():
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
                             special=(tok.cls_token or "[CLS]", tok.sep_token or "[SEP]"))


# --------------------------------------------------------------------------- comparison


def divergence(a: SentenceAttention, b: SentenceAttention) -> np.ndarray:
    """[layers, heads] Jensen-Shannon divergence (bits, 0..1) between matching heads'
    attention rows, averaged over the query tokens; NaN where either model lacks the head.

    The grid is the larger of the two models' grids. Both must have read the same tokens."""
    if a.tokens != b.tokens:
        raise LabError("the two models read different tokens (different tokenizers or "
                       "limits), so their heads cannot be compared row by row; pick models "
                       "with the same tokenizer")
    layers, heads = max(a.kept.shape[0], b.kept.shape[0]), max(a.kept.shape[1], b.kept.shape[1])
    out = np.full((layers, heads), np.nan)
    la, ha = a.kept.shape
    lb, hb = b.kept.shape
    both = np.zeros((layers, heads), dtype=bool)
    both[:min(la, lb), :min(ha, hb)] = a.kept[:min(la, lb), :min(ha, hb)] & \
        b.kept[:min(la, lb), :min(ha, hb)]
    for layer, head in zip(*np.nonzero(both)):
        p = a.maps[layer, head].astype(np.float64)
        q = b.maps[layer, head].astype(np.float64)
        out[layer, head] = _js_rows(p, q).mean()
    return out


def _js_rows(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Jensen-Shannon divergence in bits of each row of p [T, T] against q [T, T] -> [T]."""
    m = (p + q) / 2

    def kl(x: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(x > 0, x * np.log2(x / m), 0.0)
        return terms.sum(-1)

    return np.clip((kl(p) + kl(q)) / 2, 0.0, 1.0)


def head_summary(att: SentenceAttention) -> list[dict[str, Any]]:
    """What each kept head mostly attends to, with its attention entropy.

    For each head, the share of attention mass (averaged over query tokens) that goes to
    [CLS], to [SEP], to the previous token, the next token, and the token itself; the pattern
    is the largest share when it is at least DOMINANT_SHARE, else "broad". Shares can overlap
    (the token before the first word is [CLS]). Entropy: mean over query rows, in bits, and
    normalised by log2(tokens) (1 = uniform)."""
    n = len(att.tokens)
    cls = np.array([t == att.special[0] for t in att.tokens])
    sep = np.array([t == att.special[1] for t in att.tokens])
    rows = []
    for layer, head in zip(*np.nonzero(att.kept)):
        a = att.maps[layer, head].astype(np.float64)  # [T, T]
        shares = {
            "[CLS]": a[:, cls].sum(-1).mean(),
            "[SEP]": a[:, sep].sum(-1).mean(),
            "previous": np.diagonal(a, -1).sum() / n,
            "next": np.diagonal(a, 1).sum() / n,
            "self": np.diagonal(a).mean(),
        }
        top = max(shares, key=shares.get)
        with np.errstate(divide="ignore", invalid="ignore"):
            entropy = float(-np.where(a > 0, a * np.log2(a), 0.0).sum(-1).mean())
        rows.append({"layer": int(layer), "head": int(head),
                     "pattern": top if shares[top] >= DOMINANT_SHARE else "broad",
                     "share": round(float(shares[top]), 3),
                     "entropy_bits": round(entropy, 3),
                     "entropy_norm": round(entropy / float(np.log2(n)), 3) if n > 1 else 0.0,
                     **{f"to_{k}": round(float(v), 3) for k, v in shares.items()}})
    return rows


# --------------------------------------------------------------------------- views


@functools.lru_cache(maxsize=1)
def _offline_scripts() -> str:
    """jQuery and d3 inlined from pip packages, plus a three-line stand-in for require.js.

    bertviz's JS only calls require.config(...) and requirejs(['jquery', 'd3'], fn) and
    expects require.js, d3 5.7.0 and jQuery from a CDN. d3 5.7.0 comes from the mpld3 wheel
    (BSD-3), jQuery 3.7.1 from XStatic-jQuery (MIT); both are loaded as plain globals and
    the stand-in hands them to bertviz, so no module loader ever fetches anything."""
    def package_file(package: str, relative: str) -> str:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise LabError(f"the package providing {relative} ({package}) is not installed; "
                           f"run the README's set-up command (pip install -r requirements.txt)")
        return (Path(next(iter(spec.submodule_search_locations))) / relative).read_text()

    jquery = package_file("xstatic.pkg.jquery", "data/jquery.min.js")
    d3 = package_file("mpld3", "js/d3.v5.min.js")
    shim = ("window.require = {config: function () {}};\n"
            "window.requirejs = function (deps, fn) {\n"
            "  var mods = {jquery: window.jQuery, d3: window.d3};\n"
            "  fn.apply(null, deps.map(function (d) { return mods[d]; }));\n};")
    return "".join(f"<script>{_script_safe(js)}</script>\n" for js in (jquery, d3, shim))


def _script_safe(js: str) -> str:
    """Inline-script text that cannot close its <script> element early: a token such as
    "</script>" in the attention data stays a string (`<\\/` is `</` inside JS strings)."""
    return js.replace("</", "<\\/").replace("<!--", "<\\!--")


def views_html(att: SentenceAttention, view: str = "head") -> str:
    """A standalone HTML document with bertviz's head view or model view of `att`, rendering
    with no network at all (every script inline). Removed heads and layers are marked."""
    import torch
    from bertviz import head_view, model_view

    if view not in ("head", "model"):
        raise ValueError(f"view must be head or model, got {view!r}")
    removed = att.removed()
    # bertviz wants [1, heads, T, T] per layer; a removed head draws no lines (all zeros).
    # Rounded float64 keeps the embedded JSON short (0.123, not 0.12300000339746475).
    grid = np.nan_to_num(att.maps, nan=0.0).astype(np.float64).round(3)
    attention = [torch.from_numpy(layer)[None] for layer in grid]
    whole = [layer for layer, heads in removed.items() if len(heads) == att.kept.shape[1]]
    if view == "head":
        present = [i for i in range(len(attention)) if i not in whole]
        doc = head_view(attention, att.tokens, include_layers=present or None,
                        html_action="return").data
    else:
        doc = model_view(attention, att.tokens, display_mode="light",
                         html_action="return").data
    doc = re.sub(r"<script src=\"https://[^\"]*\"></script>", "", doc)
    doc = re.sub(r"require\.config\(\{.*?\}\);", "", doc, count=1, flags=re.S)
    doc = re.sub(r"(<script type=\"text/javascript\">)(.*?)(</script>)",
                 lambda m: m.group(1) + _script_safe(m.group(2)) + m.group(3), doc, flags=re.S)
    assert "cdnjs" not in doc and "<script src" not in doc, "a view still loads a remote script"
    note = _removed_note(removed, whole, view)
    marks = ""
    if view == "model":
        cells = [[layer, head] for layer, heads in removed.items() for head in heads]
        marks = f"<script>{_MODEL_VIEW_MARKS.replace('REMOVED', json.dumps(cells))}</script>"
    return ("<!doctype html><html><head><meta charset=\"utf-8\">"
            "<style>body{margin:0;font-family:'Helvetica Neue',Helvetica,Arial,sans-serif;"
            "font-size:13px} .removed-note{color:#6b5200;background:#fff3bf;padding:4px 8px;"
            "margin-bottom:6px;border-radius:4px}</style>\n"
            f"{_offline_scripts()}</head><body>{note}{doc}{marks}</body></html>")


def _removed_note(removed: dict[int, list[int]], whole: list[int], view: str) -> str:
    if not removed:
        return ""
    parts = [f"layer {layer}: whole layer" if layer in whole else
             f"layer {layer}: heads {', '.join(map(str, heads))}"
             for layer, heads in sorted(removed.items())]
    where = ("greyed out below" if view == "model" else
             "they draw no lines" + ("; removed layers are left out of the list"
                                     if whole else ""))
    return (f"<div class=\"removed-note\">Removed by compression ({where}): "
            f"{html.escape('; '.join(parts))}</div>")


# Runs after bertviz has drawn the model view (synchronously, through the require stand-in):
# grey out removed cells and scale the fixed 970-px drawing to the frame's width.
_MODEL_VIEW_MARKS = """
(function () {
  var svg = d3.select('#vis svg');
  if (svg.empty()) { return; }
  REMOVED.forEach(function (c) {
    var bg = svg.select('#attn_background_' + c[0] + '_' + c[1]);
    if (bg.empty()) { return; }
    var x = +bg.attr('x'), y = +bg.attr('y'), w = +bg.attr('width'), h = +bg.attr('height');
    svg.append('rect').attr('class', 'removed-cell').attr('x', x).attr('y', y)
      .attr('width', w).attr('height', h).attr('fill', '#ced4da').attr('opacity', 0.85)
      .attr('pointer-events', 'none');
    svg.append('text').attr('x', x + w / 2).attr('y', y + h / 2).attr('text-anchor', 'middle')
      .attr('font-size', Math.max(7, Math.min(11, w / 5)) + 'px').attr('fill', '#495057')
      .attr('pointer-events', 'none').text('removed');
  });
  var width = +svg.attr('width'), height = +svg.attr('height');
  svg.attr('viewBox', '0 0 ' + width + ' ' + height).attr('width', '100%')
    .attr('height', null).style('max-width', width + 'px');
})();
"""


# --------------------------------------------------------------------------- ablation


@dataclass(frozen=True)
class Ablation:
    """Accuracy on a sample of the test split with some heads switched off, and what that
    does to one sentence's prediction."""

    model_id: str
    dataset: str
    examples: int
    heads_off: int  # heads switched off by the user (that the model still had)
    baseline_accuracy: float  # 0..1, no head switched off
    accuracy: float  # 0..1, with the heads off
    flipped: int  # sample examples whose prediction changed
    sentence_before: tuple[str, float] | None  # (label, confidence)
    sentence_after: tuple[str, float] | None
    seconds: float  # wall time of the ablated re-score (model already loaded)


def ablate(model_id: str, heads_off: list[tuple[int, int]], examples: int = 200,
           dataset_id: str | None = None, sentence: str | None = None,
           max_tokens: int | None = None) -> Ablation:
    """Re-score the first `examples` test examples with the heads `heads_off` (original
    (layer, head) pairs) switched off, without retraining: their outputs are zeroed before the
    projection that mixes heads, as a head mask of 0 would. The model is the cached one; the
    sentence is read with the same token limit as the views (`max_tokens`)."""
    from engine.data import load_dataset
    from engine.evaluation import classification_metrics, predict

    loaded = load(model_id)
    dataset_id = dataset_id or loaded.dataset or "rotten-tomatoes"
    data = load_dataset(dataset_id)
    if data.num_labels != len(loaded.label_names):
        raise LabError(f"{model_id} predicts {len(loaded.label_names)} labels but {dataset_id} "
                       f"has {data.num_labels}; score it on the dataset it was trained on")
    examples = max(1, min(int(examples), len(data.test)))
    texts, labels = data.test.texts[:examples], data.test.labels[:examples]
    off = [(int(layer), int(h)) for layer, h in heads_off
           if 0 <= layer < loaded.layers and 0 <= h < loaded.heads and loaded.kept[layer, h]]
    limit = min(int(max_tokens or loaded.max_tokens), loaded.max_tokens)
    has_sentence = bool(sentence and sentence.strip())
    with _lock:
        key = (dataset_id, examples)
        if key not in loaded.baselines:
            loaded.baselines[key] = predict(loaded.model, loaded.tokenizer, texts,
                                            loaded.eval_length, loaded.device)[0]
        base_preds = loaded.baselines[key]
        before = _one(loaded, sentence, limit) if has_sentence else None
        with _heads_switched_off(loaded, off):
            start = time.perf_counter()
            preds, _ = predict(loaded.model, loaded.tokenizer, texts, loaded.eval_length,
                               loaded.device)
            seconds = time.perf_counter() - start
            after = _one(loaded, sentence, limit) if has_sentence else None
    metrics = classification_metrics(labels, preds, data.num_labels)
    base = classification_metrics(labels, base_preds, data.num_labels)
    return Ablation(model_id=model_id, dataset=dataset_id, examples=examples,
                    heads_off=len(off), baseline_accuracy=base["accuracy"],
                    accuracy=metrics["accuracy"], flipped=int(np.sum(preds != base_preds)),
                    sentence_before=before, sentence_after=after, seconds=seconds)


def _one(loaded: Loaded, text: str, max_tokens: int) -> tuple[str, float]:
    from engine.evaluation import predict

    pred, probs = predict(loaded.model, loaded.tokenizer, [text], max_tokens, loaded.device)
    label = int(pred[0])
    return loaded.label_names[label], float(probs[0, label])


class _heads_switched_off:
    """Context manager: forward pre-hooks that zero the chosen heads' slices of the input of
    each layer's head-mixing projection (original (layer, head) pairs)."""

    def __init__(self, loaded: Loaded, off: list[tuple[int, int]]):
        self.loaded, self.off, self.handles = loaded, off, []

    def __enter__(self) -> _heads_switched_off:
        import torch

        blocks = _encoder_layers(self.loaded.model)
        d = self.loaded.head_dim
        for position, (layer, heads) in enumerate(zip(self.loaded.layer_index,
                                                      self.loaded.kept_heads)):
            slots = [heads.index(h) for (lay, h) in self.off if lay == layer and h in heads]
            if not slots:
                continue
            proj = _out_projection(blocks[position])
            mask = torch.ones(len(heads) * d, device=self.loaded.device)
            for slot in slots:
                mask[slot * d:(slot + 1) * d] = 0.0
            self.handles.append(proj.register_forward_pre_hook(
                lambda _mod, args, mask=mask: (args[0] * mask.to(args[0].dtype), *args[1:])))
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self.handles:
            handle.remove()


# --------------------------------------------------------------------------- stored facts


def _names(model_id: str) -> set[str]:
    """Every id the model `model_id` goes by (its row name and alias), for matching jobs."""
    from storage import jobs as store

    row = store.find_model(model_id)
    return {model_id} | ({row.name} | ({row.alias} if row.alias else set()) if row else set())


def parent_of(model_id: str) -> str | None:
    """The input model of the job that produced `model_id`, if a job did."""
    from storage import jobs as store

    row = store.find_model(model_id)
    if row is None or row.job_id is None:
        return None
    try:
        return store.get_job(row.job_id).model
    except store.JobNotFound:
        return None


def head_importance(model_ids: list[str]) -> tuple[int, str, np.ndarray] | None:
    """(job id, model scored, [layers, heads] importance) from the newest done prune job that
    took or produced one of `model_ids`, or None when there is none."""
    from storage import jobs as store

    names = set().union(*(_names(m) for m in model_ids if m)) if model_ids else set()
    for job in store.list_jobs(statuses=("done",)):
        if job.method != "prune" or not ({job.model, job.output_model} & names):
            continue
        scores = store.job_as_dict(job)["metrics"].get("head_importance")
        if scores:
            return job.id, job.model, np.asarray(scores, dtype=np.float64)
    return None
