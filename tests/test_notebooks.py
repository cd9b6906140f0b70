"""Every chapter in notebooks/ runs under papermill with SMOKE=True (new chapters are picked up)."""

import json

import pytest

from conftest import NOTEBOOKS


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_chapter_executes(executed, path):
    out = executed(path.stem)
    nb = json.loads(out.read_text())
    errors = [o for c in nb["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_chapter_source_is_clean(path):
    """Outputs stripped, a parameters cell with SMOKE, a Colab install cell, short code cells."""
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and not c.get("execution_count") for c in code)
    params = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(params) == 1 and "SMOKE" in "".join(params[0]["source"])
    first = "".join(code[0]["source"])
    assert "google.colab" in first and "hide-output" in code[0].get("metadata", {}).get("tags", [])
    assert all("sys.path" not in "".join(c["source"]) for c in code)
    assert max(len("".join(c["source"]).splitlines()) for c in code) <= 25
