"""The one loader: a saved model's ordered architecture changes, replayed from config.json."""

from __future__ import annotations

import json

import pytest
import torch

from engine.submit import submit
from engine.toolkit import architecture as A
from engine.toolkit.checkpoints import META_FILE, ModelRef, load_classifier, read_meta, resolve
from engine.toolkit.config import LabError
from storage import jobs as store
from tests.conftest import run_done as run


def batch() -> dict:
    torch.manual_seed(1)
    return {"input_ids": torch.randint(1000, 2000, (2, 7))}


def tiny(tiny_model_dir):
    return load_classifier(ModelRef("tiny", str(tiny_model_dir), "local")).eval()


def test_a_folder_saved_before_change_lists_still_loads(tiny_model_dir, tmp_path) -> None:
    from engine.methods.prune import surgery as P

    model = tiny(tiny_model_dir)
    P.remove_heads(model, {0: [1, 2]})
    model.save_pretrained(tmp_path, safe_serialization=True)
    (tmp_path / META_FILE).write_text(json.dumps({"method": "prune", "loader": "prune"}))
    again = load_classifier(ModelRef("old", str(tmp_path), "local")).eval()
    assert P.heads_per_layer(again.config) == [2, 4]
    with torch.no_grad():
        torch.testing.assert_close(again(**batch()).logits, model(**batch()).logits)


def test_legacy_metadata_becomes_a_change_list() -> None:
    assert A.changes_of({}) == []
    assert A.changes_of({"changes": [{"kind": "factorised"}]}) == [{"kind": "factorised"}]
    assert A.changes_of({"loader": "prune"}, {"pruned_heads": {}}) == []
    quantized = A.changes_of({"loader": "quantize", "dtype": "float32", "embeddings": True},
                             {"pruned_heads": {"0": [1]}})
    assert [c["kind"] for c in quantized] == ["heads_removed", "quantized"]


def test_an_unknown_change_kind_is_a_clear_error(tiny_model_dir, tmp_path) -> None:
    tiny(tiny_model_dir).save_pretrained(tmp_path, safe_serialization=True)
    (tmp_path / META_FILE).write_text(json.dumps({"changes": [{"kind": "teleported"}]}))
    with pytest.raises(LabError, match="teleported"):
        load_classifier(ModelRef("x", str(tmp_path), "local"))


def test_distill_prune_lowrank_quantize_chain_reloads(tiny_model_dir, tiny_csv) -> None:
    data = f"csv:{tiny_csv}"
    student = run(submit("distill", model=str(tiny_model_dir), dataset=data,
                         sets=["student_layers=[1]", "max_steps=2", "eval_every=2",
                               "batch_size=8", "max_length=32"]))
    pruned = run(submit("prune", from_job=student["id"], dataset=data,
                        sets=["heads=0:1", "recovery_steps=0", "max_length=32"]))
    low = run(submit("lowrank", from_job=pruned["id"], dataset=data,
                     sets=["target=both", "rank=0.5", "recovery_steps=0", "max_length=32"]))
    quant = run(submit("quantize", from_job=low["id"], dataset=data,
                       sets=["max_length=32", "runtime=eager"]))
    meta = read_meta(store.find_model(quant["output_model"]).path)
    assert [c["kind"] for c in meta["changes"]] == ["heads_removed", "factorised", "quantized"]
    model = load_classifier(resolve(quant["output_model"]))
    assert model.config.kept_layers == [1], "the student's teacher layer survives the chain"
    sa = model.bert.encoder.layer[0].attention.self
    assert sa.num_attention_heads == 3 and isinstance(sa.query, torch.nn.Sequential)
    assert type(sa.query[0].weight).__name__ == "Int8Tensor"
    from engine.toolkit.checkpoints import load_tokenizer
    from engine.toolkit.data import load_dataset
    from engine.toolkit.evaluation import predict

    preds, probs = predict(model, load_tokenizer(resolve(quant["output_model"])),
                           load_dataset(data).test.texts, 32)
    stored = store.predictions(quant["id"])
    assert [p.pred for p in stored] == [int(p) for p in preds]
    assert [p.confidence for p in stored] == pytest.approx(
        [float(probs[i, p]) for i, p in enumerate(preds)], abs=1e-5)
