"""Before and after the metric fixes of commit 1b5dcf2, at the chapters' default sizes.

The commit fixed four measurement errors (stability at each map's own resolution; ties
counted as hits or ordered in raster order; insertion blurred with sigma = H/8; model
randomisation at 3x PyTorch's default variance and SmoothGrad's noise scaled by the
whole batch). This script runs the package as it was before the commit (extracted from
git into a temporary folder) and as it is now on the same maps, images and settings the
chapters use at their default sizes, and prints one table per error.

    python scripts/metric_fixes/round1.py [--out results.json]

It needs the repository's git history (a clone, not an archive). On two CPU cores it
takes a few minutes.
"""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[2]
FIX = "1b5dcf2"  # the commit that fixed errors 1, 4, 5 and 6 of the measurement review



def _mm(pkg):
    """The module of the metrics that query the model: ``metrics`` before the split, ``model_metrics`` after."""
    return getattr(pkg, "model_metrics", pkg.metrics)


def _sanity(pkg):
    """The randomisation checks' module: ``metrics`` before the split, ``sanity`` after."""
    return getattr(pkg, "sanity", pkg.metrics)

def old_package(commit: str, folder: Path):
    """Import ``xaihelpers`` as it was at ``commit`` under the name ``xaihelpers_before``."""
    data = subprocess.run(["git", "archive", commit, "xaihelpers"], cwd=ROOT, check=True,
                          capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(data)) as tar:
        tar.extractall(folder, filter="data")
    (folder / "xaihelpers").rename(folder / "xaihelpers_before")
    sys.path.insert(0, str(folder))
    return importlib.import_module("xaihelpers_before")


def stability_rows(old, new, cnn, x, y, images, samples):
    """Chapter 3's Table 2 stability column (error 1): the same explainers, both metrics."""
    rows = []
    srd = {"srd_low": {"layer": None}, "srd_high": {"layer": new.models.default_layer(cnn, "middle")}, "srd_input": {}}
    for name, kw in srd.items():
        for label, pkg in (("before", old), ("after", new)):
            s = _mm(pkg).stability(new.srd.explain, cnn, x[:images], y[:images], n_samples=samples, **kw)
            rows.append({"method": name, "version": label, "stability": float(np.nanmean(s))})
    for name in ("gradcam", "layercam", "saliency", "integrated_gradients"):
        fn = new.explainers.get(name)
        for label, pkg in (("before", old), ("after", new)):
            s = _mm(pkg).stability(fn, cnn, x[:images], y[:images], n_samples=samples)
            rows.append({"method": name, "version": label, "stability": float(np.nanmean(s))})
    return pd.DataFrame(rows).pivot(index="method", columns="version", values="stability")[["before", "after"]]


def tie_rows(old, new, cnn, x, y, masks, iters):
    """Error 4: the pointing game of a constant map; causal maps' top 10 % and their deletion."""
    const = torch.ones(len(x), *x.shape[-2:])
    pg = {label: float(np.nanmean(pkg.metrics.pointing_game(const, masks))) for label, pkg in (("before", old), ("after", new))}
    resp = new.causal.search(cnn, x, y, rule="lenient", iters=iters, verbose=False)  # chapter 4's rule
    maps = torch.as_tensor(np.stack([e.responsibility for e in resp]), dtype=torch.float32)
    flat = maps.flatten(1)
    k = round(0.1 * flat.shape[1])
    thr = flat.sort(1, descending=True).values[:, k - 1:k]
    share_before = (flat >= thr).float().mean(1)  # every pixel at the threshold value
    share_after = new.metrics.top_share(maps, 0.1).flatten(1).float().mean(1)
    rows = {"pointing game, constant map": pg,
            "top 10 % of a causal map: share returned (mean)": {"before": float(share_before.mean()), "after": float(share_after.mean())},
            "top 10 %: largest share returned": {"before": float(share_before.max()), "after": float(share_after.max())}}
    for label, pkg in (("before", old), ("after", new)):
        d, i = _mm(pkg).deletion_insertion(cnn, x, maps, y)
        rows.setdefault("causal maps: deletion AUC", {})[label] = float(np.mean(d))
        rows.setdefault("causal maps: insertion AUC", {})[label] = float(np.mean(i))
        size = _mm(pkg).explanation_size(cnn, x, maps, y)
        rows.setdefault("causal maps: smallest sufficient share", {})[label] = float(np.mean(size))
    return pd.DataFrame(rows).T[["before", "after"]]


def insertion_rows(old, new, cnn, x, y):
    """Error 5: insertion (and deletion, unchanged by the blur) of chapter 1's baselines."""
    rows = []
    for name in ("saliency", "integrated_gradients", "gradcam", "lrp_epsilon_plus", "smoothgrad", "occlusion"):
        maps = new.baselines.explain(cnn, x, y, method=name)
        for label, pkg in (("before", old), ("after", new)):
            d, i = _mm(pkg).deletion_insertion(cnn, x, maps, y)
            rows.append({"method": name, "version": label, "insertion": float(np.mean(i)), "deletion": float(np.mean(d))})
    return pd.DataFrame(rows).pivot(index="method", columns="version", values=["insertion", "deletion"])


def randomisation_rows(old, new, cnn, x, y):
    """Error 6: chapter 1's cascading check after all layers, and SmoothGrad's batch dependence."""
    rows = {}
    for name in ("saliency", "gradcam", "integrated_gradients", "lrp_epsilon_plus"):
        fn = new.explainers.get(name)
        for label, pkg in (("before", old), ("after", new)):
            casc = _sanity(pkg).cascading_randomisation(fn, cnn, x, y)
            last = casc[casc["stage"] == casc["stage"].max()]["similarity"].mean()
            rows.setdefault(f"{name}: Spearman rho after all layers", {})[label] = float(last)
    for label, pkg in (("before", old), ("after", new)):
        alone = pkg.baselines.explain(cnn, x[:1], y[:1], method="smoothgrad")
        batch = pkg.baselines.explain(cnn, x, y, method="smoothgrad")[:1]
        rows.setdefault("SmoothGrad: image 0 alone vs in its batch (max |diff| / max)", {})[label] = float(
            (alone - batch).abs().max() / alone.abs().max())
    return pd.DataFrame(rows).T[["before", "after"]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, help="write the tables as JSON here")
    ap.add_argument("--causal-images", type=int, default=8, help="benchmark images with a causal map (chapter 4: 32)")
    args = ap.parse_args()
    torch.set_num_threads(2)
    import xaihelpers as new

    with tempfile.TemporaryDirectory() as tmp:
        old = old_package(f"{FIX}^", Path(tmp))
        new.seed_everything(0)
        cnn, prep, _ = new.load_model("fmnist_cnn_relu")
        test = new.benchmark.cluttered_fashion_mnist("test")
        x, y = prep.normalize(test.images[:100]), test.labels[:100]
        tables = {
            "1. stability, chapter 3's Table 2 (10 images, 5 neighbours)": stability_rows(old, new, cnn, x, y, 10, 5),
            "4. ties (pointing game: chapter 1's 100 images)": tie_rows(old, new, cnn, x[:args.causal_images], y[:args.causal_images],
                                                                      test.masks[:args.causal_images], 10).rename(
                index={"pointing game, constant map": "pointing game, constant map (first images)"}),
            "5. insertion blur, chapter 1 (100 images)": insertion_rows(old, new, cnn, x, y),
            "6. randomisation, chapter 1 (8 images); SmoothGrad on 8": randomisation_rows(old, new, cnn, x[:8], y[:8]),
        }
    pd.set_option("display.width", 160)
    for title, table in tables.items():
        print(f"\n## {title}\n{table.round(4).to_string()}")
    if args.out:
        args.out.write_text(json.dumps({t: json.loads(tab.to_json()) for t, tab in tables.items()}, indent=1))


if __name__ == "__main__":
    main()
