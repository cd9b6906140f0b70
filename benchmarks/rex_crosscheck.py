"""Cross-check of ``xaihelpers.causal`` against the ``rex-xai`` package on the masking-value path.

``rex-xai`` pins ``numpy==1.26.4``, so it lives in its own environment, e.g.::

    python -m venv rexenv && rexenv/bin/pip install rex-xai -e .
    rexenv/bin/python benchmarks/rex_crosscheck.py [--images 16] [--iters 20]

For benchmark test images (the chapter-1 CNN, its predicted class, masking value 0)
both compute a responsibility map with the same number of random partition trees.
Both are random, so the agreement between the two implementations is printed next to
the agreement of each with itself under another seed: if ours matches ``rex-xai`` about
as well as ``rex-xai`` matches itself, they compute the same thing. Agreement is the
Spearman correlation of the maps and the overlap (IoU) of their top 10 % pixels; the
explanation size is the smallest top fraction that keeps the label (the same
extraction, ``xh.causal.extract``, on each map).

The recorded run is ``xaihelpers/rex_crosscheck.txt`` (its output, with the command,
versions and date as ``#`` lines); chapter 4 reads it with
``xh.causal.rex_crosscheck_record()``.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from scipy.stats import spearmanr

import xaihelpers as xh


def rex_map(model, x, target: int, iters: int, seed: int) -> np.ndarray:
    from rex_xai.explanation.rex import calculate_responsibility
    from rex_xai.input.config import CausalArgs
    from rex_xai.input.input_data import Data
    from rex_xai.responsibility.prediction import default_prediction_function

    args = CausalArgs()
    args.iters, args.seed, args.mask_value, args.progress_bar, args.batch_size = iters, seed, 0, False, 64
    data = Data(None, [1, *x.shape[1:]], "cpu", mode="RGB")
    data.data, data.mask_value = x.clone(), 0
    predict = default_prediction_function(model)
    data.target = predict(data.data)[0]
    if data.target.classification != target:
        raise RuntimeError("rex-xai and the model disagree on the predicted class")
    maps, _ = calculate_responsibility(data, args, predict)
    m = np.asarray(maps.get(target), dtype=np.float64)
    m = m - m.min()
    return m / m.max() if m.max() > 0 else m


def ours_map(model, x, target: int, iters: int, seed: int) -> np.ndarray:
    predict = xh.causal.masked_predictor(model, x, "zero")
    return xh.causal.responsibility(predict, tuple(x.shape[-2:]), target, iters=iters, seed=seed, verbose=False)[0]


def top_iou(a: np.ndarray, b: np.ndarray, frac: float = 0.1) -> float:
    k = int(frac * a.size)
    ta, tb = set(np.argsort(-a.ravel())[:k]), set(np.argsort(-b.ravel())[:k])
    return len(ta & tb) / len(ta | tb)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--iters", type=int, default=20)
    args = ap.parse_args()
    torch.manual_seed(0)
    model, prep, _ = xh.load_model("fmnist_cnn_relu", device="cpu")
    test = xh.benchmark.cluttered_fashion_mnist("test", n=args.images, verbose=False)
    x = prep.normalize(test.images)
    with torch.no_grad():
        pred = model(x).argmax(1)
    rows = []
    for i in range(args.images):
        xi, t = x[i : i + 1], int(pred[i])
        # rex-xai seeds tree i with seed + i: seeds far apart give independent trees
        r1, r2 = rex_map(model, xi, t, args.iters, 1), rex_map(model, xi, t, args.iters, 1001)
        o1, o2 = ours_map(model, xi, t, args.iters, 1), ours_map(model, xi, t, args.iters, 1001)
        predict = xh.causal.masked_predictor(model, xi, "zero")
        size = lambda m: float(xh.causal.extract(predict, m.astype(np.float32), t)[0].mean())  # noqa: E731
        rows.append({
            "ours-rex": spearmanr(o1.ravel(), r1.ravel())[0], "rex-rex": spearmanr(r1.ravel(), r2.ravel())[0],
            "ours-ours": spearmanr(o1.ravel(), o2.ravel())[0],
            "iou ours-rex": top_iou(o1, r1), "iou rex-rex": top_iou(r1, r2), "iou ours-ours": top_iou(o1, o2),
            "size ours": size(o1), "size rex": size(r1)})
        print(f"image {i}: " + ", ".join(f"{k} {v:.2f}" for k, v in rows[-1].items()), flush=True)
    print(f"\n{args.images} benchmark images, {args.iters} partition trees, masking value 0 (mean +- standard error)")
    for k in rows[0]:
        v = np.array([r[k] for r in rows], dtype=float)
        v = v[np.isfinite(v)]
        print(f"{k:15s} {v.mean():6.3f} +- {v.std(ddof=1) / np.sqrt(len(v)):.3f}")


if __name__ == "__main__":
    main()
