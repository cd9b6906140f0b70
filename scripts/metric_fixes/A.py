"""Before and after of findings 4, 5 and 12 of issue 32, on the benchmark the chapters use.

- 4: the localisation error's threshold alpha was chosen on the scored images (the
  minimum of the sweep); now each image is scored at the alpha chosen on the other half
  (``metrics.localisation_heldout``, ``evaluation.summarise``). Measured on an
  uninformative map (Gaussian-smoothed noise, blobs that know nothing of the image;
  several draws, averaged) and on the gradient of the benchmark CNN, on chapter 2's 64
  test images.
- 5: SmoothGrad drew one set of noise for every image of a batch; now each image has its
  own stream. Measured on the noisy inputs the model receives.
- 12: the pointing game dilated every mask by a float64 convolution with the disk; now
  each image is checked on its own. Peak memory is measured in child processes (the
  old code at one and two maps, extrapolated linearly in the maps, since 16 maps would
  take gigabytes), and the two definitions are compared image for image.

Run through ``scripts/metric_fixes_before_after.py --only A``; about a minute on two cores.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import torch

N_LOC = 64  # benchmark test images for finding 4: chapter 2's localisation table
DRAWS = 5  # draws of the uninformative maps, averaged
N_NOISE = 8  # images in the SmoothGrad batch of finding 5


def _uninformative(n: int, size: int, seed: int = 0) -> torch.Tensor:
    """Noise smoothed by a Gaussian of sigma size/32 and scaled to [0, 1]: blobs that know nothing of the image."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    g = np.stack([gaussian_filter(rng.random((size, size)), size / 32) for _ in range(n)])
    g = g - g.min(axis=(1, 2), keepdims=True)
    return torch.from_numpy(g / g.max(axis=(1, 2), keepdims=True))


def _loc_columns(pkg, maps, boxes) -> "pd.DataFrame":  # noqa: F821
    """evaluate()'s per-image columns for ``maps`` (loc_error@alpha and the table's others), with ``pkg``'s metrics."""
    import pandas as pd

    m = pkg.metrics.prepare(maps)
    df = pd.DataFrame({c: np.nan for c in pkg.evaluation.TABLE_COLUMNS}, index=range(len(m)))
    df["seconds"] = 0.0
    for a in pkg.metrics.ALPHAS:
        df[f"loc_error@{a:g}"] = pkg.metrics.localisation_error(m, boxes, a)
    return df


def localisation_rows(old, new, cnn, x, y, boxes) -> list[dict]:
    size, n = x.shape[-1], len(x)
    before, after, summ = [], [], {"before": [], "after": []}
    for d in range(DRAWS):
        m = _uninformative(n, size, seed=d)
        before.append(float(old.metrics.localisation_sweep(m, boxes).min()))
        after.append(float(new.metrics.localisation_heldout(m, boxes, seed=d)["loc_error"].mean()))
        if d == 0:
            df = _loc_columns(new, m, boxes)
            for label, pkg in (("before", old), ("after", new)):
                summ[label] = float(pkg.evaluation.summarise({"uninformative": df}).iloc[0]["loc_error"])
    name = f"uninformative map (smoothed noise), {n} benchmark test images"
    rows = [{"finding": "4", "quantity": f"{name}: localisation error, mean of {DRAWS} draws "
             "(before: alpha chosen on the scored images; after: on the other half)",
             "before": float(np.mean(before)), "after": float(np.mean(after))},
            {"finding": "4", "quantity": f"{name}: evaluation.summarise's loc_error, one draw", **summ}]
    grad = new.baselines.explain(cnn, x, y, "saliency")
    rows.append({"finding": "4", "quantity": f"gradient (saliency), {n} benchmark test images: localisation error",
                 "before": float(old.metrics.localisation_sweep(grad, boxes).min()),
                 "after": float(new.metrics.localisation_heldout(grad, boxes)["loc_error"].mean())})
    return rows


class _Recorder(torch.nn.Module):
    """The model, recording the noisy inputs SmoothGrad feeds it."""

    def __init__(self, model):
        super().__init__()
        self.model, self.seen = model, []

    def forward(self, x):
        if x.requires_grad:
            self.seen.append(x.detach().clone())
        return self.model(x)


def smoothgrad_rows(old, new, cnn, x, y) -> list[dict]:
    rows = {}
    for label, pkg in (("before", old), ("after", new)):
        rec = _Recorder(cnn).eval()
        samples = 5
        pkg.baselines.explain(rec, x, y, "smoothgrad", nt_samples=samples, nt_samples_batch_size=samples)
        eps = (torch.cat(rec.seen).view(len(x), samples, *x.shape[1:]) - x[:, None]).flatten(1)
        r = torch.corrcoef(eps)
        off = r[~torch.eye(len(x), dtype=torch.bool)]
        rows.setdefault(f"SmoothGrad: mean correlation of two images' noise, batch of {len(x)}", {})[label] = \
            float(off.mean())
        alone = pkg.baselines.explain(cnn, x[:1], y[:1], "smoothgrad")
        batch = pkg.baselines.explain(cnn, x, y, "smoothgrad")[:1]
        rows.setdefault("SmoothGrad: image 0 alone vs in its batch (max |diff| / max)", {})[label] = float(
            (alone - batch).abs().max() / alone.abs().max())
    return [{"finding": "5", "quantity": q, **v} for q, v in rows.items()]


_CHILD = textwrap.dedent("""
    import sys
    sys.path.insert(0, {root!r})
    import importlib
    import torch
    metrics = importlib.import_module({name!r} + ".metrics")

    def status(key):
        return next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith(key))

    n, size, tol = {n}, 224, {tol}
    maps = torch.rand(n, size, size, generator=torch.Generator().manual_seed(0))
    masks = torch.zeros(n, size, size, dtype=torch.bool)
    masks[:, 80:140, 60:170] = True
    base = status("VmRSS")
    metrics.pointing_game(maps, masks, tolerance=tol)
    print(status("VmHWM") - base)
""")


def _peak(pkg, n: int, tol: int) -> float:
    """Peak resident memory (bytes) a child process adds to score ``n`` random 224-px maps at ``tol`` px."""
    root = str(Path(pkg.__file__).resolve().parents[1])
    out = subprocess.run([sys.executable, "-c", _CHILD.format(root=root, name=pkg.__name__, n=n, tol=tol)],
                         capture_output=True, text=True, timeout=300)
    if out.returncode:
        raise RuntimeError(out.stderr[-2000:])
    return float(out.stdout.split()[-1])


def pointing_rows(old, new, maps, masks) -> list[dict]:
    gb = 2**30
    one, two = _peak(old, 1, 15), _peak(old, 2, 15)
    per_map = two - one
    rows = [
        {"finding": "12", "quantity": "pointing game, 16 maps of 224 px at 15 px: peak memory, GiB "
                                      "(before: extrapolated from 1 and 2 maps)",
         "before": (one + 15 * per_map) / gb, "after": _peak(new, 16, 15) / gb},
        {"finding": "12", "quantity": "pointing game, 500 maps of 224 px at 15 px: peak memory, GiB "
                                      "(before: extrapolated)",
         "before": (one + 499 * per_map) / gb, "after": _peak(new, 500, 15) / gb},
        {"finding": "12", "quantity": "pointing game, one 224-px map: peak memory at 30 px over that at 15 px",
         "before": _peak(old, 1, 30) / one, "after": _peak(new, 1, 30) / _peak(new, 1, 15)},
    ]
    tol = new.metrics.default_tolerance(maps.shape[-1])
    a, b = old.metrics.pointing_game(maps, masks), new.metrics.pointing_game(maps, masks)
    differ = int((~np.isclose(a, b, rtol=0, atol=1e-12) & ~(np.isnan(a) & np.isnan(b))).sum())
    rows.append({"finding": "12", "quantity": f"pointing game at {tol} px, gradient maps of {len(maps)} benchmark "
                 "images: images where the two definitions differ", "before": "-", "after": differ})
    return rows


def rows(old, new) -> list[dict]:
    torch.manual_seed(0)
    cnn, prep, _ = new.load_model("fmnist_cnn_relu")
    test = new.benchmark.cluttered_fashion_mnist("test", n=N_LOC, verbose=False)
    x, y = prep.normalize(test.images), test.labels
    out = localisation_rows(old, new, cnn, x, y, test.boxes)
    out += smoothgrad_rows(old, new, cnn, x[:N_NOISE], y[:N_NOISE])
    out += pointing_rows(old, new, new.baselines.explain(cnn, x, y, "saliency"), test.masks)
    return out


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    import tempfile

    import xaihelpers as new_pkg

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from metric_fixes_before_after import BEFORE, old_package, table

    with tempfile.TemporaryDirectory() as tmp:
        print(table(rows(old_package(BEFORE, Path(tmp)), new_pkg)))
