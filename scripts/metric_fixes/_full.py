"""The FULL switch of a chapter read from its source: shared by the before/after parts."""

from __future__ import annotations

import ast
import json


def full_settings(nb_text: str) -> tuple[dict, dict]:
    """The parameters cell's values, and the same after the ``if FULL:`` branch ran with FULL=True."""
    cells = [("".join(c["source"]), c.get("metadata", {}).get("tags", []))
             for c in json.loads(nb_text)["cells"] if c["cell_type"] == "code"]
    defaults: dict = {}
    exec(next(src for src, tags in cells if "parameters" in tags), {}, defaults)

    def python(src: str) -> str:
        return "\n".join(line[: len(line) - len(line.lstrip())] + "pass" if line.lstrip().startswith(("%", "!"))
                         else line for line in src.splitlines())

    branch = next(node for src, _ in cells for node in ast.parse(python(src)).body
                  if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "FULL")
    full = {**defaults, "FULL": True}
    exec(compile(ast.Module(body=branch.body, type_ignores=[]), "<FULL>", "exec"), {}, full)
    return defaults, full
