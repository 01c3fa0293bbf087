"""The architecture's boundaries and the README's promises."""

from __future__ import annotations

import re
import subprocess
import sys

from storage.settings import SETTINGS
from tests.conftest import ROOT

# Pages that run a model in the dashboard's process through one cached engine function
# (DESIGN.md allows it for interactive views); every other page must stay light.
MODEL_IN_THE_LOOP = {"pages/attention.py"}


def test_pages_never_import_torch() -> None:
    """Rendering every page (with the engine helpers they use) leaves torch unimported."""
    code = (
        "import os, sys\n"
        "os.environ['LAB_WORKER_AUTOSTART'] = '0'\n"
        "from streamlit.testing.v1 import AppTest\n"
        "from tests.test_pages import PAGES\n"
        f"for page in [p for p in PAGES if p not in {sorted(MODEL_IN_THE_LOOP)!r}]:\n"
        "    at = AppTest.from_file('app.py', default_timeout=60); at.run()\n"
        "    at.switch_page(page); at.run()\n"
        "    assert not at.exception, (page, at.exception)\n"
        # the Compress form asks a method whether each choice runs on the worker's device
        "from engine.methods.registry import methods\n"
        "for spec in methods().values():\n"
        "    for f in spec.config.fields_info() if spec.availability else []:\n"
        "        for choice in f.get('choices') or []:\n"
        "            try: cfg = spec.config.from_values({f['name']: choice})\n"
        "            except Exception: continue\n"
        "            for dev in ('cpu (2 threads)', 'cuda:Tesla T4 (sm75)'):\n"
        "                spec.availability(cfg, dev)\n"
        "heavy = [m for m in ('torch', 'transformers', 'bertviz') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]


def test_engine_never_imports_streamlit_and_pages_never_torch() -> None:
    for path in (ROOT / "engine").rglob("*.py"):
        assert not re.search(r"^\s*(import|from)\s+streamlit", path.read_text(), re.M), path
    for path in list((ROOT / "pages").glob("*.py")) + [ROOT / "app.py"]:
        assert not re.search(r"^\s*(import|from)\s+(torch|transformers|bertviz)",
                             path.read_text(), re.M), path


def test_every_setting_is_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    for s in SETTINGS:
        assert f"| `{s.name}` | `{s.default}` | {s.help} |" in readme, s.name


def test_readme_test_command_is_ci() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "bash .ci/run" in readme
    ci = (ROOT / ".ci" / "run").read_text()
    assert "pip install" in ci and "pytest" in ci and "scattertext" in ci
    start = readme.split("## Start the dashboard")[1]
    assert "streamlit run app.py" in start and "scattertext" in start
