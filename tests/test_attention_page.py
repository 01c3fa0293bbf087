"""The Attention page under AppTest: views, the parent comparison, teacher and student layers,
head importance and ablation on screen, the base encoder before any job."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from engine import attention as A
from storage import jobs as store
from tests.attention_support import (
    HOSTILE,
    assert_offline,
    fresh_cache,  # noqa: F401 (an autouse fixture)
    inner,
    parsed,
    seed_model,
)
from tests.conftest import ROOT


def page(state: dict | None = None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    for key, value in (state or {}).items():
        at.session_state[key] = value
    at.switch_page("pages/attention.py")
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def iframes(at: AppTest) -> list[str]:
    """The bertviz documents the page sends (inside their sandboxed wrappers)."""
    return [inner(el.proto.srcdoc) for el in at.get("iframe")]


def chart(at: AppTest, key: str) -> dict:
    """The plotly figure drawn with widget key `key`, as a dict."""
    import json

    for el in at.get("plotly_chart"):
        if key in (el.proto.id or ""):
            return json.loads(el.proto.spec)
    raise AssertionError(f"no chart {key}")


def zgrid(fig: dict) -> np.ndarray:
    """A heatmap's z as floats (plotly may send it as a base64 typed array)."""
    import base64

    z = fig["data"][0]["z"]
    if isinstance(z, dict):
        shape = [int(n) for n in str(z.get("shape", "")).split(",") if n.strip()]
        arr = np.frombuffer(base64.b64decode(z["bdata"]), dtype=np.dtype(z["dtype"]))
        return arr.reshape(shape).astype(float) if shape else arr.astype(float)
    return np.array([[np.nan if v is None else v for v in row] for row in z], dtype=float)


def captions(at: AppTest) -> str:
    return "\n".join(c.value for c in at.caption)


def test_page_renders_views_offline(tiny_model_dir, tiny_csv) -> None:
    seed_model("job:1", tiny_model_dir, f"csv:{tiny_csv}", alias="default")
    at = page()
    docs = iframes(at)
    assert len(docs) == 1 and "bertviz-" in docs[0] and "requirejs(" in docs[0]
    assert_offline(docs[0])
    assert any(m.label == "Prediction" for m in at.metric)
    assert at.get("plotly_chart"), "the per-head pattern map is drawn"
    assert any("No head importance for" in i.value for i in at.info)
    at.button(key="attn_rescore").click().run()
    assert not at.exception, [e.message for e in at.exception]
    assert any(m.label.startswith("Accuracy, 0 heads off") for m in at.metric)

    at.segmented_control(key="attn_view").set_value("model").run()
    assert "attn_background_" in iframes(at)[0], "the model view's script is in the document"

    at.text_area(key="attn_sentence").set_value("   ").run()
    assert not at.exception and not at.error
    assert not iframes(at) and any("Type a sentence" in i.value for i in at.info)

    at.text_area(key="attn_sentence").set_value(HOSTILE).run()
    assert not at.exception and not at.error
    assert [t for t, _ in parsed(iframes(at)[0])].count("script") == 6
    assert "<img src=x" not in at.get("iframe")[0].proto.srcdoc

    at.number_input(key="attn_max_tokens").set_value(8).run()
    assert any("cut off" in w.value for w in at.warning)


def test_page_compares_a_model_with_its_parent_from_the_results_handoff(tiny_model_dir,
                                                                        tiny_csv) -> None:
    teacher = store.enqueue("finetune", {"data": {}}, "minilm-l6", f"csv:{tiny_csv}")
    seed_model(f"job:{teacher}", tiny_model_dir, f"csv:{tiny_csv}", job_id=teacher,
               alias="default")
    child = store.enqueue("evaluate", {"data": {}}, "default", f"csv:{tiny_csv}")
    seed_model(f"job:{child}", tiny_model_dir, f"csv:{tiny_csv}", job_id=child)
    at = page({"attention_sentence": "i hated the ending",
               "attention_models": [f"job:{child}"]})
    assert at.text_area(key="attn_sentence").value == "i hated the ending"
    assert at.selectbox(key="attn_model_a").value == f"job:{child}"
    assert at.selectbox(key="attn_model_b").value == f"job:{teacher}", "the parent by default"
    assert len(iframes(at)) == 2
    assert len(at.get("plotly_chart")) == 2, "the difference map and the head patterns"
    assert not at.error


# --------------------------------------------------------------------------- issue 13 / 15


def six_layer_teacher_and_student(root: Path) -> tuple[Path, Path]:
    """A 6-layer tiny teacher and a 3-layer student built by hand from its layers 0, 2, 5,
    recording kept_layers / original_layers in its config as a distill job does."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from engine.toolkit.checkpoints import embedded_minilm_path

    torch.manual_seed(1)
    cfg = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=6,
                     num_attention_heads=4, intermediate_size=64, max_position_embeddings=128,
                     num_labels=2, id2label={0: "negative", 1: "positive"},
                     label2id={"negative": 0, "positive": 1}, attn_implementation="eager")
    teacher = BertForSequenceClassification(cfg).eval()
    scfg = copy.deepcopy(cfg)
    scfg.num_hidden_layers = 3
    student = BertForSequenceClassification(scfg).eval()
    student.load_state_dict(teacher.state_dict(), strict=False)  # embeddings, pooler, head
    for position, layer in enumerate((0, 2, 5)):
        student.bert.encoder.layer[position].load_state_dict(
            teacher.bert.encoder.layer[layer].state_dict())
    student.config.kept_layers, student.config.original_layers = [0, 2, 5], 6
    tok = AutoTokenizer.from_pretrained(embedded_minilm_path())
    out = []
    for name, model in (("teacher6", teacher), ("student3", student)):
        model.save_pretrained(root / name, safe_serialization=True)
        tok.save_pretrained(root / name)
        out.append(root / name)
    return out[0], out[1]


def seed_pair(tmp_path: Path, csv: Path) -> tuple[str, str]:
    teacher_dir, student_dir = six_layer_teacher_and_student(tmp_path)
    t = store.enqueue("finetune", {"data": {}}, "minilm-l6", f"csv:{csv}")
    seed_model(f"job:{t}", teacher_dir, f"csv:{csv}", job_id=t, alias="default")
    s = store.enqueue("distill", {"data": {}}, f"job:{t}", f"csv:{csv}")
    store.register_model(f"job:{s}", str(student_dir), "job", job_id=s, method="distill",
                         info={"dataset": f"csv:{csv}"})
    return f"job:{t}", f"job:{s}"


def test_a_distilled_student_lines_up_with_its_teacher_layers(tmp_path, tiny_csv) -> None:
    """13.3: the student's layers 0, 1, 2 are the teacher's 0, 2, 5 in every comparison."""
    teacher, student = seed_pair(tmp_path, tiny_csv)
    at = page({"attention_models": [student]})
    assert at.selectbox(key="attn_model_b").value == teacher, "the teacher by default"
    div = zgrid(chart(at, "attn_divergence"))
    assert div.shape == (6, 4)
    assert np.isnan(div[[1, 3, 4]]).all(), "teacher layers the student does not have"
    assert not np.isnan(div[[0, 2, 5]]).any(), "the student's layers sit at 0, 2, 5"
    np.testing.assert_allclose(div[0], 0.0, atol=1e-6), "layer 0 is the same layer"
    text = captions(at)
    assert "layers 0, 2, 5 of 6 (recorded)" in text
    assert "no mapping" not in text.lower()
    assert "layer 1: all; layer 3: all; layer 4: all" in text
    assert "layer 5: all" not in text and "layer 2: all" not in text


def test_a_student_without_a_record_says_no_mapping_is_recorded(tmp_path, tiny_csv) -> None:
    _, student_dir = six_layer_teacher_and_student(tmp_path)
    cfg = (student_dir / "config.json")
    import json

    data = json.loads(cfg.read_text())
    del data["kept_layers"], data["original_layers"]
    cfg.write_text(json.dumps(data))
    teacher, student = seed_pair(tmp_path / "again", tiny_csv)
    store.register_model("job:99", str(student_dir), "job", method="distill",
                         info={"dataset": f"csv:{tiny_csv}"})
    at = page({"attention_models": ["job:99", teacher]})
    assert "no mapping is recorded" in captions(at)


def test_head_importance_is_the_scores_of_the_model_on_screen(tmp_path, tiny_csv) -> None:
    """13.4: the teacher's scores for the teacher; for the 3-layer student, none for it."""
    teacher, student = seed_pair(tmp_path, tiny_csv)
    job = store.enqueue("prune", {"data": {"kind": "heads"}}, teacher, f"csv:{tiny_csv}")
    store.claim(1, job_id=job)
    scores = [[round(0.1 * (i + h), 2) for h in range(4)] for i in range(6)]
    store.save_results(job, {"model": teacher, "dataset": f"csv:{tiny_csv}",
                             "head_importance": scores}, [], [])
    store.finish(job)
    at = page({"attention_models": [teacher]})
    z = zgrid(chart(at, "attn_importance"))
    np.testing.assert_allclose(z, scores)
    assert f"scored by prune job {job}" in captions(at)

    at.selectbox(key="attn_model_a").set_value(student).run()
    assert not at.exception
    assert any(f"No head importance for {student}" in i.value for i in at.info)
    assert not [el for el in at.get("plotly_chart") if "attn_importance" in el.proto.id]


def test_own_head_importance_places_a_pruned_models_scores(tiny_model_dir) -> None:
    job = store.enqueue("prune", {"data": {"kind": "heads"}}, "job:7", "rotten-tomatoes")
    store.claim(1, job_id=job)
    store.save_results(job, {"model": "job:7", "dataset": "rotten-tomatoes",
                             "head_importance": [[0.5, 0.2], [0.9]]}, [], [])
    store.finish(job)
    kept = np.array([[True, False, True], [False, False, False], [False, True, False]])
    found = A.own_head_importance("job:7", [0, 2], kept)
    assert found is not None and found[0] == job
    np.testing.assert_allclose(found[1], [[0.5, np.nan, 0.2], [np.nan] * 3,
                                          [np.nan, 0.9, np.nan]])
    assert A.own_head_importance("job:8", [0, 2], kept) is None
    with pytest.raises(ValueError, match="layers"):
        A.own_head_importance("job:7", [0], kept[:1])


def test_ablation_interval_and_mcnemar() -> None:
    """13.15: a small change on few examples is within chance; a large one is not."""
    before = np.array([True] * 100 + [False] * 100)
    after = before.copy()
    after[100:103] = True  # 3 of 200 more right: +1.5 points
    lo, hi = A.paired_interval(before, after)
    assert lo <= 0.0 <= hi and hi >= 0.015
    assert A.mcnemar_exact(3, 0) == pytest.approx(0.25)
    after[100:160] = True
    lo, hi = A.paired_interval(before, after)
    assert lo > 0.2 and A.mcnemar_exact(60, 0) < 1e-10
    assert A.paired_interval(before, before) == (0.0, 0.0)
    res = A.Ablation("m", "d", 200, 2, 0.5, 0.515, 3, None, None, 0.1, delta_ci=(-0.005, 0.035))
    assert res.within_chance and res.delta == pytest.approx(0.015)


def test_the_page_says_when_an_ablation_is_within_chance(tiny_model_dir, tiny_csv) -> None:
    seed_model("job:1", tiny_model_dir, f"csv:{tiny_csv}", alias="default")
    at = page()
    at.button(key="attn_rescore").click().run()
    assert not at.exception
    assert "within chance" in captions(at) and "McNemar" in captions(at)
    metric = next(m for m in at.metric if m.label.startswith("Accuracy, 0 heads off"))
    assert "+0.0 points (+0.0 to +0.0)" in metric.proto.delta


def test_the_base_encoder_works_before_any_job(tmp_path) -> None:
    """15.3: no models stored, the teacher still building: minilm-l6's real attention."""
    at = page()
    assert at.selectbox(key="attn_model_a").value == A.BASE_ENCODER
    assert any("No trained models yet" in i.value for i in at.info)
    docs = iframes(at)
    assert len(docs) == 1 and "bertviz-" in docs[0]
    assert not any(m.label == "Prediction" for m in at.metric)
    assert "a prediction needs a classifier" in captions(at)
    assert any("no classifier" in i.value for i in at.info), "no what-if without one"


def test_the_longest_setting_sends_a_bounded_view(tmp_path) -> None:
    """13.1 under AppTest: 512 tokens of a long text on minilm-l6 send one window."""
    long = " ".join(f"word{i % 50} and the story goes on" for i in range(200))
    at = page({"attn_sentence": long})
    at.number_input(key="attn_max_tokens").set_value(512).run()
    assert not at.exception
    wrapper = at.get("iframe")[0].proto.srcdoc
    assert len(wrapper) < 3_000_000
    assert "Tokens 0-63 of 512 shown" in inner(wrapper)
    assert "tokens 0-63 of the 512 read" in captions(at)
    at.number_input(key="attn_window").set_value(200).run()
    assert "Tokens 200-263 of 512 shown" in inner(at.get("iframe")[0].proto.srcdoc)
    at.number_input(key="attn_window").set_value(448).run()  # the head view's last window
    at.segmented_control(key="attn_view").set_value("model").run()
    assert not at.exception
    assert "model view shows tokens 448-479 of the 512 read" in captions(at)
    assert "Tokens 448-479 of 512 shown" in inner(at.get("iframe")[0].proto.srcdoc)
    at.number_input(key="attn_window").set_value(480).run()  # the model view's last window
    at.segmented_control(key="attn_view").set_value("head").run()
    assert not at.exception, "a start past the head view's last window is moved back"
    assert "head view shows tokens 448-511 of the 512 read" in captions(at)


def test_an_older_student_is_placed_by_its_jobs_teacher_layers(tmp_path, tiny_csv) -> None:
    """Students distilled before config.json carried kept_layers: the job's notes place
    them, but only for a student built from teacher layers."""
    import json

    _, student_dir = six_layer_teacher_and_student(tmp_path)
    cfg = student_dir / "config.json"
    data = json.loads(cfg.read_text())
    del data["kept_layers"], data["original_layers"]
    cfg.write_text(json.dumps(data))
    placed = {}
    for kind in ("teacher-layers", "shape"):
        job = store.enqueue("distill", {"data": {}}, "default", f"csv:{tiny_csv}")
        store.claim(1, job_id=job)
        store.save_results(job, {"model": f"job:{job}", "dataset": f"csv:{tiny_csv}",
                                 "student_kind": kind, "teacher_layers_used": [0, 2, 5]},
                           [], [])
        store.finish(job, output_model=f"job:{job}")
        store.register_model(f"job:{job}", str(student_dir), "job", job_id=job,
                             method="distill", info={"dataset": f"csv:{tiny_csv}"})
        A.clear_cache()
        loaded = A.load(f"job:{job}")
        placed[kind] = (loaded.layer_index, loaded.mapped)
    assert placed == {"teacher-layers": ([0, 2, 5], True), "shape": ([0, 1, 2], False)}
