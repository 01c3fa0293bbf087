"""Where a quantize scheme may run: GPU schemes are refused on a CPU with a reason and the
scheme to use instead (by the config, submit, the CLI, a recipe, the job itself and the
Compress form), and each GPU generation's limits (fp8 needs sm89, bf16 sm80). Devices are
the strings a worker describes itself with; nothing here needs a GPU."""

from __future__ import annotations

import pytest
import torch

from engine.methods import quantize as Q
from engine.submit import submit
from engine.toolkit.config import ConfigError
from storage import jobs as store
from tests.test_quantize import CPU, run

H100 = "cuda:NVIDIA H100 80GB HBM3 (sm90)"
A100 = "cuda:NVIDIA A100-SXM4-80GB (sm80)"
T4 = "cuda:Tesla T4 (sm75)"

@pytest.mark.parametrize("scheme", ["fp16", "int8-weight-only", "int4-weight-only", "fp8"])
def test_gpu_schemes_are_refused_on_the_cpu_with_a_reason(scheme) -> None:
    why = Q.availability(Q.QuantizeConfig(scheme=scheme), CPU)
    assert why and "cpu (2 threads)" in why and "scheme=int8-dynamic" in why
    assert Q.availability(Q.QuantizeConfig(scheme=scheme), H100) is None

def test_gpu_generation_limits() -> None:
    cfg = Q.QuantizeConfig
    assert "sm89" in Q.availability(cfg(scheme="fp8"), A100)
    assert Q.availability(cfg(scheme="int4-weight-only"), A100) is None
    assert "sm80" in Q.availability(cfg(scheme="bf16"), T4)
    assert Q.availability(cfg(scheme="fp16"), T4) is None
    for scheme in Q.CPU_SCHEMES:
        assert Q.availability(cfg(scheme=scheme), CPU) is None

def test_submit_refuses_a_scheme_the_worker_cannot_run(tiny_model_dir, tiny_csv) -> None:
    with pytest.raises(ConfigError, match="fp8 needs .* scheme=int8-dynamic"):
        submit("quantize", model=str(tiny_model_dir), dataset=f"csv:{tiny_csv}",
               sets=["scheme=fp8"], device=CPU)
    assert store.list_jobs() == []

def test_cli_says_why_and_what_to_use_instead(tiny_model_dir, tiny_csv, capsys) -> None:
    from engine.cli import main

    store.register_worker(device=CPU)  # a live CPU worker: the CLI checks against it
    code = main(["submit", "quantize", "--model", str(tiny_model_dir), "--dataset",
                 f"csv:{tiny_csv}", "--set", "scheme=fp8"])
    err = capsys.readouterr().err
    assert code != 0 and "fp8 needs" in err and "scheme=int8-dynamic" in err
    assert [j.method for j in store.list_jobs()] == []

@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a CPU machine")
def test_cli_with_no_worker_alive_checks_the_scheme_against_this_machine(
        tiny_model_dir, tiny_csv, capsys) -> None:
    """No worker yet (the one submit would start runs here): the CLI asks this machine."""
    from engine.cli import main

    code = main(["submit", "quantize", "--model", str(tiny_model_dir), "--dataset",
                 f"csv:{tiny_csv}", "--set", "scheme=fp8"])
    err = capsys.readouterr().err
    assert code != 0 and "fp8 needs" in err and "cpu (" in err
    assert store.list_jobs() == []

@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a CPU machine")
def test_a_recipe_with_a_gpu_step_queues_nothing_on_a_cpu(tiny_model_dir, tiny_csv,
                                                         tmp_path) -> None:
    from engine.recipes import submit_recipe

    path = tmp_path / "chain.yaml"
    path.write_text(f"model: {tiny_model_dir}\ndataset: csv:{tiny_csv}\nsteps:\n"
                    f"  - method: evaluate\n  - method: quantize\n    config: {{scheme: fp16}}\n")
    with pytest.raises(ConfigError, match=r"step 2 \(quantize\): fp16 is a GPU scheme"):
        submit_recipe(path)
    assert store.list_jobs() == []

def test_a_job_never_runs_a_scheme_silently_on_the_wrong_device(tiny_model_dir,
                                                                tiny_csv) -> None:
    """Submitted with no worker alive (so unchecked), the job itself refuses, cleanly."""
    job = run(submit("quantize", model=str(tiny_model_dir), dataset=f"csv:{tiny_csv}",
                     sets=["scheme=fp16"]))
    assert job["status"] == "failed"
    assert "GPU scheme" in job["error"] and "Traceback" not in job["error"]

# ------------------------------------------------------------------------ the form

def test_compress_page_renders_the_quantize_form_and_refuses_fp8_on_a_cpu_worker() -> None:
    from streamlit.testing.v1 import AppTest

    from tests.conftest import ROOT

    store.register_worker(device=CPU)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()
    at.switch_page("pages/compress.py")
    at.run()
    at.session_state["method"] = "quantize"
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    widgets = {w.key: w for w in [*at.selectbox, *at.checkbox, *at.number_input,
                                  *at.text_input]}
    for info in Q.QuantizeConfig.fields_info():
        # a field that does nothing for the default scheme is hidden (calibration: static)
        applies = info.get("applies_when") or {}
        shown = all(Q.QuantizeConfig().__getattribute__(k) in v for k, v in applies.items())
        assert (f"cfg_quantize_{info['name']}" in widgets) == shown, info["name"]
    scheme = at.selectbox(key="cfg_quantize_scheme")
    assert list(scheme.options) == list(Q.SCHEMES)
    assert not at.button(key="launch").disabled
    scheme.set_value("fp8").run()
    assert any("fp8 needs" in w.value for w in at.warning)
    assert at.button(key="launch").disabled
