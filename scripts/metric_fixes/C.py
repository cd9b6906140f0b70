"""Findings 8 and 11 of the second review: Activation Matching's necessity at matched area and shape; FULL's sizes.

Finding 8. The review compared the object mask with random *scattered* masks of 20 % of
the pixels, whatever the object's area, and the chapter's necessity table put the
amortised masks (area 0.885) beside per-image masks (0.398). Before: the package had no
control of matched area (``actmatch.matched_controls`` did not exist), so the only control
is the review's scattered 20 %; after: scattered pixels, one connected blob and the
object mask shifted, each with exactly the object mask's pixel count on every image, on
the same benchmark images, compared with the object mask by the paired difference.
The area mismatch is read from the recorded default runs of chapter 5 (before: the
record at the commit before the fixes; after: the current record).

Finding 11. Chapter 5's parameters under ``FULL=True``, before and after: the cell tagged
``parameters`` and the setup cell's ``if FULL:`` branch, executed without the rest.

Called by ``scripts/metric_fixes_before_after.py`` as ``rows(old, new)``; a minute on two
CPU cores (64 benchmark images, forward passes only).
"""

from __future__ import annotations

import ast
import io
import json
import subprocess
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
BEFORE = "c6de3ec"
CHAPTER = "05_activation_matching"
N = 64


def _git_show(path: str, commit: str = BEFORE) -> str:
    return subprocess.run(["git", "show", f"{commit}:{path}"], cwd=ROOT, check=True, capture_output=True,
                          text=True).stdout


def _full_settings(nb_text: str) -> tuple[dict, dict]:
    """The parameters cell's values, and the same after the ``if FULL:`` branch ran (``_full.py``)."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from _full import full_settings

    return full_settings(nb_text)


def _area_gap(record: dict) -> str:
    """The areas of the rows of chapter 5's necessity table(s) in a default-run record."""
    import pandas as pd

    g = record["glued"]
    if "necessity_json" in g:  # before: one table
        tab = pd.read_json(io.StringIO(g["necessity_json"]), orient="split")
        a = tab["area"].astype(float)
        return f"{a.min():.3f} to {a.max():.3f} in one table"
    gaps = []
    for key in ("object", "am", "amort"):
        if f"nec_{key}_json" in g:
            a = pd.read_json(io.StringIO(g[f"nec_{key}_json"]), orient="split")["area"].astype(float)
            gaps.append(float(a.max() - a.min()))
    return f"largest area gap within a table: {max(gaps):.3g}" if gaps else "not recorded"


def rows(old, new) -> list[dict]:
    out = []
    cnn, prep, _ = new.load_model("fmnist_cnn_relu", device="cpu")
    test = new.benchmark.cluttered_fashion_mnist("test", n=N, verbose=False)
    x = prep.normalize(test.images)
    obj = test.masks.float()
    with torch.no_grad():
        pred = cnn(x).argmax(1)

    # before: the review's control, scattered pixels of 20 % of the image whatever the object's area
    g = torch.Generator().manual_seed(0)
    scattered20 = (torch.rand(obj.shape, generator=g) < 0.2).float()
    res_obj = old.actmatch.necessity(cnn, x, obj, pred)
    res_s20 = old.actmatch.necessity(cnn, x, scattered20, pred)
    out.append({"finding": "8", "quantity": "label kept with the mask hidden: object mask / scattered control "
                "(before: 20 % of the pixels, the review's; after: exactly the object's pixel count)",
                "before": f"{1 - res_obj['lost'].mean():.2f} / {1 - res_s20['lost'].mean():.2f} "
                          f"(areas {res_obj['area'].mean():.3f} / {res_s20['area'].mean():.3f})",
                "after": None})
    tab, per = new.actmatch.matched_comparison(cnn, x, obj, pred, name="object mask")
    hidden_kept = {row: float(1 - sc["necessary"].mean()) for row, sc in per.items()}
    names = list(per)
    out[-1]["after"] = " / ".join(f"{hidden_kept[r]:.2f}" for r in names[:2]) + \
        f" (areas {tab['area'].iloc[0]:.3f} / {tab['area'].iloc[1]:.3f})"
    out.append({"finding": "8", "quantity": "label kept with the mask hidden: blob / shifted object mask, same area",
                "before": "no such control", "after": " / ".join(f"{hidden_kept[r]:.2f}" for r in names[2:])})
    for row in names[1:]:
        z = float(tab.loc[row, "p hidden: row - mask"]) / max(float(tab.loc[row, "p hidden: paired se"]), 1e-12)
        out.append({"finding": "8", "quantity": f"target probability, {row.split(' (')[0]} hidden minus object mask "
                    "hidden, in paired standard errors", "before": "no such control", "after": round(z, 2)})
    before_rec = json.loads(_git_show(f"tests/default_run/{CHAPTER}.json"))
    now = ROOT / "tests" / "default_run" / f"{CHAPTER}.json"
    after_rec = json.loads(now.read_text()) if now.exists() else {"glued": {}}
    out.append({"finding": "8", "quantity": "mask areas compared in chapter 5's necessity table(s), default run",
                "before": _area_gap(before_rec), "after": _area_gap(after_rec)})

    d0, f0 = _full_settings(_git_show(f"notebooks/{CHAPTER}.ipynb"))
    d1, f1 = _full_settings((ROOT / "notebooks" / f"{CHAPTER}.ipynb").read_text(encoding="utf-8"))
    for name in ("N_IMAGES", "ROB_IMAGES"):
        out.append({"finding": "11", "quantity": f"chapter 5's {name} under FULL (default)",
                    "before": f"{f0[name]} ({d0[name]})", "after": f"{f1[name]} ({d1[name]})"})
    return out


if __name__ == "__main__":
    import sys
    import tempfile

    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "scripts"))
    import xaihelpers
    from metric_fixes_before_after import old_package, table

    with tempfile.TemporaryDirectory() as tmp:
        print(table(rows(old_package(BEFORE, Path(tmp)), xaihelpers)))
