"""Findings 7, 9 and 11 (chapter 3's FULL) of the second review: credits, ConvAD's text, FULL's attack pairs.

Finding 9. Chapter 4's confidence drop per ConvAD rule, before (the recorded default run at
the commit before the fixes: means, no standard error) and after (the current record: each
mean with its standard error over images, and the paired differences between rules). The
position attribution on a hand-worked case (two 2 x 2 convolutions on a 3 x 3 image, the
middle pixel hidden): what the package computes, before and after (unchanged), and what
its documentation defined (the fraction of the receptive field that is visible, 8/9) against
what it defines now (the path-weighted share, 0.75). The top-1 agreement of lenient ConvAD
with painting 0 on the benchmark, under random hidden squares, measured with both packages.

Finding 7. The credit of the stop at the 8/255 bound (``attack.manipulate``'s docstring and
chapter 3) and chapter 4's ``ITERS`` comment, before and after, as short strings.

Finding 11 (chapter 3). ``ATTACK_PAIRS`` and ``N_APOP`` under ``FULL=True``, before and after.

Called by ``scripts/metric_fixes_before_after.py`` as ``rows(old, new)``; under a minute on two
CPU cores (24 benchmark images, forward passes only).
"""

from __future__ import annotations

import ast
import json
import subprocess
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
BEFORE = "c6de3ec"
CH3, CH4 = "03_sharing_ratio_decomposition", "04_activation_deactivation"
RULES = ("ConvAD (lenient)", "ConvAD (majority)", "ConvAD (strict)")


def _git_show(path: str, commit: str = BEFORE) -> str:
    return subprocess.run(["git", "show", f"{commit}:{path}"], cwd=ROOT, check=True, capture_output=True,
                          text=True).stdout


def _now(path: str) -> str:
    return (ROOT / path).read_text(encoding="utf-8")


def _full_settings(nb_text: str) -> tuple[dict, dict]:
    """The parameters cell's values, and the same after the ``if FULL:`` branch ran (``_full.py``)."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from _full import full_settings

    return full_settings(nb_text)


def _table(glued: dict, key: str):
    import pandas as pd

    return pd.read_json(__import__("io").StringIO(glued[key]), orient="split")


def _phi_middle(pkg) -> float:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 1, 2), torch.nn.Conv2d(1, 1, 2)).eval()
    mask = torch.ones(1, 3, 3)
    mask[0, 1, 1] = 0
    ad = pkg.convad.wrap(net, "majority")
    with torch.no_grad():
        ad(torch.randn(1, 3, 3, 3), mask)
    return float(ad.fractions[-1].item())


def _agreement(pkg, cnn, x) -> float:
    """Share of (image, mask) pairs with the same top-1 label under lenient ConvAD and painting 0."""
    gen = torch.Generator().manual_seed(1)
    masks = []
    for side in (8, 16, 24, 32, 40, 48):
        for _ in range(6):
            m = torch.ones(64, 64)
            r, c = torch.randint(0, 65 - side, (2,), generator=gen).tolist()
            m[r:r + side, c:c + side] = 0
            masks.append(m)
    masks = torch.stack(masks)
    ad = pkg.convad.wrap(cnn, "lenient")
    same = []
    with torch.no_grad():
        for i in range(len(x)):
            xi = x[i:i + 1]
            a = ad(xi, masks).argmax(1)
            b = cnn(pkg.occlusion.paint(xi.expand(len(masks), -1, -1, -1), masks, "zero")).argmax(1)
            same.append((a == b).float())
    return float(torch.cat(same).mean())


def _sentence(text: str, start: str, length: int = 160) -> str:
    i = text.find(start)
    return " ".join(text[i:i + length].split()) + " ..." if i >= 0 else "(absent)"


def rows(old, new) -> list[dict]:
    out = []
    # ---------------------------------------------------------------- finding 9
    rec_old = json.loads(_git_show(f"tests/default_run/{CH4}.json"))["glued"]
    rec_new = json.loads(_now(f"tests/default_run/{CH4}.json"))["glued"]
    q_old, q_new = _table(rec_old, "quality_json"), _table(rec_new, "quality_json")
    for rule in RULES:
        se = (f" ± {q_new.loc[rule, 'confidence drop se']:.3f}" if "confidence drop se" in q_new.columns else " (no se)")
        out.append({"finding": "9", "quantity": f"ch. 4 confidence drop, {rule} (default run)",
                    "before": f"{q_old.loc[rule, 'confidence drop']:.3f} (no se)",
                    "after": f"{q_new.loc[rule, 'confidence drop']:.3f}{se}"})
    if "drop_pairs_json" in rec_new:
        pairs = _table(rec_new, "drop_pairs_json")
        for name, r in pairs.iterrows():
            out.append({"finding": "9", "quantity": f"ch. 4 paired confidence-drop difference, {name}",
                        "before": "not reported",
                        "after": f"{float(r['difference']):+.3f} ± {float(r['paired se']):.3f} ({r['verdict']})"})
    out.append({"finding": "9", "quantity": "Phi computed, 3 x 3 image, two 2 x 2 convs, middle pixel hidden",
                "before": _phi_middle(old), "after": _phi_middle(new)})
    out.append({"finding": "9", "quantity": "Phi as the package's documentation defines it, same case",
                "before": f"{8 / 9:.4f} (visible share of the receptive field)",
                "after": f"{(16 - 4) / 16:.4f} (path-weighted visible share)"})
    cnn, prep, _ = new.load_model("fmnist_cnn_relu", device="cpu")
    test = new.benchmark.cluttered_fashion_mnist("test", n=24, verbose=False)
    x = prep.normalize(test.images)
    out.append({"finding": "9", "quantity": "top-1 agreement, lenient ConvAD vs painting 0 (24 images x 36 hidden squares)",
                "before": f"{_agreement(old, cnn, x):.3f} (not in the chapter)",
                "after": f"{_agreement(new, cnn, x):.3f} (chapter 4, Figure 4.8)"})
    # ---------------------------------------------------------------- finding 7
    doc_old = " ".join(old.attack.manipulate.__doc__.split())
    doc_new = " ".join(new.attack.manipulate.__doc__.split())
    out.append({"finding": "7", "quantity": "attack.manipulate: who the stop at 8/255 is credited to",
                "before": _sentence(doc_old, "The stopping rule", 250),
                "after": _sentence(doc_new, "The second stop", 150)})
    nb3_old, nb3_new = _git_show(f"notebooks/{CH3}.ipynb"), _now(f"notebooks/{CH3}.ipynb")

    def md(nb_text):
        return " ".join(" ".join("".join(c["source"]) for c in json.loads(nb_text)["cells"]
                                 if c["cell_type"] == "markdown").split())

    out.append({"finding": "7", "quantity": "chapter 3: the stop at the bound",
                "before": _sentence(md(nb3_old), "As in Dombrowski et al.'s rule", 110),
                "after": _sentence(md(nb3_new), "We add a stop of our own", 200)})

    def iters_line(nb_text):
        params = next("".join(c["source"]) for c in json.loads(nb_text)["cells"]
                      if "parameters" in c.get("metadata", {}).get("tags", []))
        return next(line for line in params.splitlines() if line.startswith("ITERS ="))

    nb4_old, nb4_new = _git_show(f"notebooks/{CH4}.ipynb"), _now(f"notebooks/{CH4}.ipynb")
    out.append({"finding": "7", "quantity": "chapter 4: ITERS and ReX's default",
                "before": iters_line(nb4_old), "after": iters_line(nb4_new)})
    # ---------------------------------------------------------------- finding 11
    (_, full_old), (_, full_new) = _full_settings(nb3_old), _full_settings(nb3_new)
    for name in ("ATTACK_PAIRS", "N_APOP"):
        out.append({"finding": "11", "quantity": f"chapter 3, FULL=True: {name}",
                    "before": full_old[name], "after": full_new[name]})
    return out
