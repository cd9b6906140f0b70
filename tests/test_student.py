"""Student versions keep every exercise and drop every solution."""

import json
import subprocess
import sys
from pathlib import Path

from conftest import NOTEBOOKS

ROOT = Path(__file__).resolve().parents[1]


def test_student_notebooks_have_exercises_without_solutions(tmp_path):
    subprocess.run([sys.executable, str(ROOT / "scripts" / "student_notebooks.py"), "--out", str(tmp_path)],
                   check=True, capture_output=True)
    for nb in NOTEBOOKS:
        full = nb.read_text()
        student = json.loads((tmp_path / nb.name).read_text())
        text = "".join("".join(c["source"]) for c in student["cells"])
        assert "{solution}" in full and "{solution}" not in text
        assert text.count("{exercise}") == full.count("{exercise}") >= 3
        assert len(student["cells"]) == len(json.loads(full)["cells"])
