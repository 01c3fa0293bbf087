"""Demo packs and the per-machine teacher cache: a round trip into a fresh LAB_HOME keeps the
rows and figures; bad packs are refused and change nothing; the teacher cache hits, misses on
a changed recipe, and `fresh` bypasses it."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from engine import packs
from engine.submit import ensure_teacher, submit
from engine.toolkit.config import LabError
from engine.worker import run_claimed
from storage import jobs as store
from storage import queries
from storage.db import dispose_all


def _run(job_id: int) -> dict:
    assert store.claim(None, job_id=job_id) is not None
    run_claimed(job_id)
    return store.job_as_dict(store.get_job(job_id))


def _chain(tiny_model_dir, tiny_csv) -> tuple[dict, dict]:
    """A tiny fine-tune and an evaluation of its output: two runs, one lineage."""
    ft = _run(submit("finetune", model=str(tiny_model_dir), dataset=f"csv:{tiny_csv}",
                     sets=["max_steps=2", "max_length=16", "eval_every=1"]))
    assert ft["status"] == "done", ft["error"]
    ev = _run(submit("evaluate", model=ft["output_model"], dataset=f"csv:{tiny_csv}",
                     sets=["max_length=16", "latency_runs=2", "warmup=0"]))
    assert ev["status"] == "done", ev["error"]
    return ft, ev


def _fresh_home(tmp_path: Path, monkeypatch, name: str) -> None:
    monkeypatch.setenv("LAB_HOME", str(tmp_path / name))
    dispose_all()


def test_pack_round_trip_into_a_fresh_lab(tiny_model_dir, tiny_csv, tmp_path,
                                          monkeypatch) -> None:
    ft, ev = _chain(tiny_model_dir, tiny_csv)
    before = {r["method"]: r for r in queries.runs_table()}
    preds = {r.idx: r.pred for r in store.predictions(ev["id"])}
    pack = tmp_path / "demo.labpack"
    manifest = packs.export_pack(pack, [ev["id"]], with_models=True)
    assert manifest["runs"] == 2, "the evaluated model's own job travels with it (lineage)"

    _fresh_home(tmp_path, monkeypatch, "other-lab")
    ids = packs.import_pack(pack)
    after = {r["method"]: r for r in queries.runs_table()}
    assert after.keys() == before.keys()
    for method in after:
        a, b = after[method]["metrics"], before[method]["metrics"]
        assert a["accuracy"] == b["accuracy"] and a["latency"] == b["latency"]
    new_ev = store.get_job(ids[ev["id"]])
    assert new_ev.parent_id == ids[ft["id"]] and new_ev.model == f"job:{ids[ft['id']]}"
    assert new_ev.origin.startswith("imported from demo.labpack: measured on")
    assert {r.idx: r.pred for r in store.predictions(new_ev.id)} == preds
    model = store.find_model(f"job:{ids[ft['id']]}")
    assert model is not None and Path(model.path, "config.json").is_file()
    # the model loads where it landed
    from engine.toolkit.checkpoints import load_classifier, resolve

    assert load_classifier(resolve(model.name)) is not None


def _bad(tmp_path: Path, name: str, members: dict[str, bytes | str]) -> Path:
    f = tmp_path / name
    with zipfile.ZipFile(f, "w") as z:
        for member, data in members.items():
            z.writestr(member, data)
    return f


def test_bad_packs_are_refused_and_change_nothing(tiny_model_dir, tiny_csv, tmp_path) -> None:
    ft, _ = _chain(tiny_model_dir, tiny_csv)
    good = tmp_path / "good.labpack"
    packs.export_pack(good, [ft["id"]])
    data = good.read_bytes()
    truncated = tmp_path / "truncated.labpack"
    truncated.write_bytes(data[: len(data) // 2])
    manifest = json.loads(zipfile.ZipFile(good).read("manifest.json"))
    newer = _bad(tmp_path, "newer.labpack", {
        "manifest.json": json.dumps({**manifest, "version": packs.VERSION + 1}),
        "runs.json": zipfile.ZipFile(good).read("runs.json")})
    tampered = _bad(tmp_path, "tampered.labpack", {
        "manifest.json": json.dumps(manifest), "runs.json": b"[]"})
    foreign = _bad(tmp_path, "foreign.labpack", {"manifest.json": json.dumps({"format": "x"})})
    not_zip = tmp_path / "notes.labpack"
    not_zip.write_text("hello")
    rows_before = len(store.list_jobs())
    for f, words in ((truncated, "corrupt or truncated"), (newer, "newer lab"),
                     (tampered, "damaged"), (foreign, "not a Compression Lab pack"),
                     (not_zip, "not a readable pack")):
        with pytest.raises(LabError, match=words):
            packs.import_pack(f)
        assert str(tmp_path) not in str(words)
    assert len(store.list_jobs()) == rows_before


def test_teacher_cache_hit_miss_and_fresh(tiny_model_dir, tiny_csv, tmp_path,
                                          monkeypatch) -> None:
    """The cache is keyed by the recipe: stand the tiny fine-tune in for the teacher."""
    from engine import submit as S

    recipe = {"method": "finetune", "model": str(tiny_model_dir), "dataset": f"csv:{tiny_csv}"}
    monkeypatch.setattr(S, "TEACHER", recipe)
    monkeypatch.setattr(S, "teacher_recipe", lambda: {**recipe, "config": _cfg()})

    def _cfg():
        return S.build_config("finetune", ["max_steps=2", "max_length=16"]).to_json()

    first = ensure_teacher()
    assert first is not None, "an empty cache: the teacher is queued"
    built = _run(first)
    assert built["status"] == "done", built["error"]
    assert ensure_teacher() is None  # exists here: and is now filed in the machine's cache

    _fresh_home(tmp_path, monkeypatch, "second-lab")
    assert ensure_teacher() is None, "a cache hit: nothing to build"
    row = store.find_model("default")
    job = store.get_job(row.job_id)
    assert job.origin.startswith("from this machine's teacher cache")
    assert job.metrics.accuracy == built["metrics"]["accuracy"]

    _fresh_home(tmp_path, monkeypatch, "third-lab")
    assert ensure_teacher(fresh=True) is not None, "fresh: built anyway"

    _fresh_home(tmp_path, monkeypatch, "fourth-lab")
    monkeypatch.setattr(S, "teacher_recipe", lambda: {**recipe, "config": S.build_config(
        "finetune", ["max_steps=3", "max_length=16"]).to_json()})
    assert ensure_teacher() is not None, "a changed recipe misses the cache"


def test_a_teacher_from_an_older_split_is_built_again(tiny_model_dir, tiny_csv, tmp_path,
                                                      monkeypatch) -> None:
    """A `default` teacher trained on other splits of its dataset (a lab from before the
    validation split grew) loses the alias to a new build, and stays as job:N; one that
    recorded no splits is judged by its job's work key (today's: kept; another: rebuilt)."""
    from engine import submit as S

    data = tmp_path / "teacher.csv"
    data.write_text(tiny_csv.read_text())
    recipe = {"method": "finetune", "model": str(tiny_model_dir), "dataset": f"csv:{data}"}
    monkeypatch.setattr(S, "TEACHER", recipe)
    monkeypatch.setattr(S, "teacher_recipe", lambda: {**recipe, "config": S.build_config(
        "finetune", ["max_steps=2", "max_length=16"]).to_json()})

    def resplit(n: int) -> None:  # more rows: every split moves, as when VAL_CAP grew
        lines = tiny_csv.read_text().splitlines()
        extra = [line.replace('",', f' (copy {n})",', 1) for line in lines[1:9]]
        data.write_text("\n".join(lines + extra * n) + "\n")

    def forget_fingerprint() -> None:  # a row made before rows recorded their splits
        row = store.find_model("default")
        info = {k: v for k, v in row.info.items() if k != "dataset_fingerprint"}
        store.register_model(row.name, row.path, row.source, job_id=row.job_id,
                             alias="default", info=info)

    assert _run(ensure_teacher())["status"] == "done"
    first = store.find_model("default")
    assert first.info["dataset_fingerprint"] == S.load_dataset(f"csv:{data}").fingerprint
    assert ensure_teacher() is None, "today's split: kept"

    resplit(1)
    job_id = ensure_teacher()
    assert job_id is not None and store.find_model("default") is None
    assert store.pending_alias_job("default") == job_id == ensure_teacher()
    assert _run(job_id)["status"] == "done"
    assert store.find_model("default").name == f"job:{job_id}"
    assert store.find_model(first.name).alias is None, "the old teacher stays, by name"

    forget_fingerprint()
    assert ensure_teacher() is None and store.find_model("default").name == f"job:{job_id}"
    resplit(2)
    assert ensure_teacher() not in (None, job_id), "another split by its work key: rebuilt"


def test_pack_verbs_on_the_command_line(tmp_path, capsys) -> None:
    from engine.cli import main

    junk = tmp_path / "junk.labpack"
    junk.write_text("not a pack")
    assert main(["pack", "import", str(junk)]) == 2
    err = capsys.readouterr().err
    assert "not a readable pack" in err and "Traceback" not in err
    assert main(["pack", "export", str(tmp_path / "none.labpack")]) == 2
    assert "no finished runs" in capsys.readouterr().err
