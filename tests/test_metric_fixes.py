"""The before/after script of the measurement fixes: every part loads and the table reads right."""

from __future__ import annotations

import ast

from conftest import script


def test_every_part_defines_rows_of_old_and_new():
    # catches a part that the script would skip or crash on: each file of
    # scripts/metric_fixes/ (but the first round's script) defines rows(old, new)
    before_after = script("metric_fixes_before_after")
    parts = before_after.parts()
    assert parts, "no part in scripts/metric_fixes/"
    for name, path in parts.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        rows = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "rows"]
        assert rows, f"{path.name} defines no rows()"
        assert [a.arg for a in rows[0].args.args][:2] == ["old", "new"], path.name


def test_table_sorts_by_finding_number():
    before_after = script("metric_fixes_before_after")
    text = before_after.table([
        {"finding": "12", "quantity": "memory", "before": 6.8, "after": 0.01},
        {"finding": "2", "quantity": "rho", "before": 0.44, "after": 0.01},
        {"finding": "10", "quantity": "test", "before": "cannot fail", "after": "fails when swapped"},
    ])
    lines = text.splitlines()
    assert [ln.split("|")[1].strip() for ln in lines[2:]] == ["2", "10", "12"]
    assert "0.44" in lines[2] and "cannot fail" in lines[3]
