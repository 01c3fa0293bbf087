"""The search's latency table: what one encoder layer and one attention head cost on this
machine, measured once per model, device, batch size and length, and stored as JSON in
$LAB_HOME/searches/latency/.

Three copies of the starting model are timed together, paired and interleaved
(engine.toolkit.timing.measure): the model as it is, with no encoder layer (the fixed cost:
embeddings, pooler, classifier) and with half of each layer's heads (random weights of the
pruned shape: timing only). Then fixed = t(no layers), layer = (t(full) - fixed) / layers,
head = (t(full) - t(half heads)) / (layers x heads removed per layer), all eager, in ms.
About 12 rounds per copy: seconds on the teacher, well under a second on a tiny model.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from engine.reports.search_plan import LatencyTable
from engine.search import records
from engine.toolkit.config import LabError
from storage import jobs as store

ROUNDS, WARMUP = 12, 2


def table_for(model_id: str, fingerprint: str, device_kind: str, batch: int, seq_len: int,
              texts: list[str]) -> LatencyTable:
    """The stored table for this model content, device kind, batch and length, else measured
    now and stored. `int8_speedup` is read fresh from the quantize jobs done here."""
    path = records.folder() / "latency" / f"{fingerprint[:24]}-{device_kind.replace('/', '_')}" \
                                          f"-b{batch}-l{seq_len}.json"
    if path.is_file():
        data = json.loads(path.read_text())
    else:
        data = measure_table(model_id, batch, seq_len, texts)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data))
    return LatencyTable(**data, int8_speedup=int8_speedups(batch, device_kind))


def measure_table(model_id: str, batch: int, seq_len: int, texts: list[str]) -> dict[str, Any]:
    import torch
    from torch import nn

    from engine.toolkit import checkpoints as M
    from engine.toolkit import device as dev
    from engine.toolkit.timing import Timed, measure

    device = dev.setup()
    ref = M.resolve(model_id)
    model = M.load_classifier(ref).to(device).eval()
    tokenizer = M.load_tokenizer(ref)
    layers = getattr(getattr(model.base_model, "encoder", None), "layer", None)
    if layers is None or (len(layers) and not hasattr(layers[0].attention, "self")):
        raise LabError(f"{model_id}: the search plans over BERT-style encoders (BERT, MiniLM); "
                       f"{type(model).__name__} has another layout")
    n, cfg = len(layers), model.config
    heads = layers[0].attention.self.num_attention_heads if n else cfg.num_attention_heads
    d = layers[0].attention.self.attention_head_size if n else cfg.hidden_size // heads
    none = copy.deepcopy(model)
    none.base_model.encoder.layer = nn.ModuleList([])
    half = copy.deepcopy(model)
    keep = max(1, heads // 2)
    for layer in half.base_model.encoder.layer:  # the pruned shape, random weights
        sa, hidden = layer.attention.self, cfg.hidden_size
        for name in ("query", "key", "value"):
            setattr(sa, name, nn.Linear(hidden, keep * d).to(device))
        sa.num_attention_heads, sa.all_head_size = keep, keep * d
        layer.attention.output.dense = nn.Linear(keep * d, hidden).to(device)
    timed = {"full": Timed(model, device), "none": Timed(none, device),
             "half": Timed(half, device)}
    with torch.inference_mode():
        rows = measure(timed, tokenizer, texts, [batch], seq_len, warmup=WARMUP, runs=ROUNDS)
    t = {name: rows[name][0]["p50_ms"] for name in rows}
    fixed = t["none"]
    layer_ms = max(0.0, (t["full"] - fixed) / max(1, n))
    removed = heads - keep
    head_ms = max(0.0, (t["full"] - t["half"]) / (n * removed)) if n and removed else 0.0
    head_ms = min(head_ms, layer_ms / max(1, heads))  # a head never costs more than its share
    return {"fixed_ms": fixed, "layer_ms": layer_ms, "head_ms": head_ms, "layers": n,
            "heads": heads, "hidden": cfg.hidden_size,
            "intermediate": getattr(cfg, "intermediate_size", 4 * cfg.hidden_size),
            "batch": batch, "device": dev.describe(device)}


def int8_speedups(batch: int, device_kind: str) -> dict[str, float]:
    """Median paired speedup of the int8 quantize jobs done on this kind of device, by scheme
    (against their float parent, under their own runtime): what int8 really gives here."""
    import statistics

    found: dict[str, list[float]] = {}
    for job in store.list_jobs(statuses=("done",), method="quantize", refresh_first=False):
        m = store.job_as_dict(job)["metrics"] or {}
        scheme = (job.config.get("data") or {}).get("scheme", "int8-dynamic")
        x = (m.get("speedup_vs_parent") or {}).get(str(batch))
        device = str(m.get("device") or "")
        if x and device.split(" ")[0].split(":")[0] == device_kind.split("/")[0]:
            found.setdefault(scheme, []).append(float(x))
    return {s: statistics.median(v) for s, v in found.items()}
