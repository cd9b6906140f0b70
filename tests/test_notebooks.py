"""Every chapter in notebooks/ runs under papermill with SMOKE=True (new chapters are picked up)."""

import json

import pytest

from conftest import LABS, NOTEBOOKS


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


@pytest.mark.parametrize("path", LABS[1:], ids=[p.stem for p in LABS[1:]])
def test_full_switch_restores_larger_sizes(path):
    """The labs of chapters 1-6 have FULL=False in the parameters cell; FULL=True sets named parameters to other values."""
    import ast

    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    i = next(k for k, c in enumerate(code) if "parameters" in c.get("metadata", {}).get("tags", []))
    defaults = {}
    for node in ast.parse("".join(code[i]["source"])).body:
        if isinstance(node, ast.Assign):
            defaults[node.targets[0].id] = ast.literal_eval(node.value)
    assert defaults.get("FULL") is False
    setup = ast.parse("".join(code[i + 1]["source"]))
    full = [n for n in setup.body if isinstance(n, ast.If) and getattr(n.test, "id", None) == "FULL"]
    assert len(full) == 1, "one `if FULL:` block in the cell after the parameters"
    changed = {}
    for node in full[0].body:
        names = node.targets[0].elts if isinstance(node.targets[0], ast.Tuple) else [node.targets[0]]
        values = node.value.elts if isinstance(node.value, ast.Tuple) and len(names) > 1 else [node.value]
        for n, v in zip(names, values):
            changed[n.id] = ast.literal_eval(v)
    assert changed and set(changed) <= set(defaults)
    assert all(changed[k] != defaults[k] for k in changed), "FULL must change what it sets"
    smoke = [n for n in setup.body if isinstance(n, ast.If) and getattr(n.test, "id", None) == "SMOKE"]
    assert setup.body.index(full[0]) < setup.body.index(smoke[0]), "SMOKE wins over FULL"
    comment = "".join(code[i]["source"]).split("FULL = False", 1)[1].splitlines()[0]
    assert all(k in comment for k in changed), "the parameters cell names what FULL changes"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_chapter_calls_no_private_name(path):
    # catches a chapter that reaches into a module's private helpers (xh.metrics._maps):
    # what a reader is shown must be public, documented API
    import ast
    import re

    from IPython.core.inputtransformer2 import TransformerManager

    found = []
    for cell in json.loads(path.read_text())["cells"]:
        if cell["cell_type"] != "code":
            continue
        src = TransformerManager().transform_cell("".join(cell["source"]))
        for node in ast.walk(ast.parse(src)):
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
                found.append(node.attr)
            elif isinstance(node, ast.ImportFrom):
                found += [a.name for a in node.names if a.name.startswith("_")]
        found += re.findall(r"\bxh(?:\.\w+)*\._\w+", src)
    assert not found, f"{path.stem} calls private names: {sorted(set(found))}"
