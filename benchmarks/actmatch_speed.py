"""Cost of Activation Matching explanations, as ratios to passes of the classifier.

Per-image training (``xh.actmatch.train`` with the authors' U-Net and ``--steps``
steps) is given in forward+backward passes of the classifier on one image; an
amortised explanation (``xh.actmatch.amortised_masks`` with a mask network of the
same size, its weights do not change the cost) in forward passes of the classifier per
image, at batch ``--batch``: the explanation is the mask network's forward pass
(``xh.actmatch.amortised_masks``), for the authors' U-Net and a narrow one (8-64, 128). All timings come from the same run.

Run: ``.venv/bin/python benchmarks/actmatch_speed.py [--model fmnist_cnn_relu] [--steps 880] [--device cpu]``.
Target (chapter 5): the amortised path costs at most 3 forward passes of the classifier per image.
"""

from __future__ import annotations

import argparse
import time

import torch
from common import best

import xaihelpers as xh


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="fmnist_cnn_relu", help="fmnist_cnn_<act>, efficientnet_lite0, resnet18 (online)")
    ap.add_argument("--steps", type=int, default=880)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    torch.manual_seed(0)
    model, prep, _ = xh.load_model(args.model, device=args.device)
    side = 64 if args.model.startswith("fmnist") else 224
    x = torch.randn(args.batch, 3, side, side, device=args.device)
    x1 = x[:1].clone().requires_grad_(True)
    fwd_bwd = best(lambda: model(x1).sum().backward(), args.repeat)
    model.zero_grad(set_to_none=True)
    with torch.no_grad():
        fwd = best(lambda: model(x), args.repeat) / args.batch
    t0 = time.perf_counter()
    xh.actmatch.explain(model, x[:1], steps=args.steps, verbose=False)
    per_image = time.perf_counter() - t0
    rows = []
    for widths, bottleneck in (((32, 64, 128, 256), 512), ((8, 16, 32, 64), 128)):
        net = xh.actmatch.MaskNet(widths, bottleneck).to(args.device).eval()
        rows.append((widths, bottleneck, best(lambda: xh.actmatch.amortised_masks(net, x), args.repeat) / args.batch))
    print(f"device: {args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads, model {args.model} at {side} px")
    print(f"per-image training, {args.steps} steps: {per_image:8.1f} s = {per_image / fwd_bwd:8.0f} forward+backward passes")
    for widths, bottleneck, amortised in rows:
        print(f"amortised explanation (U-Net {widths}, {bottleneck}), batch {args.batch}: {1000 * amortised:8.2f} ms "
              f"= {amortised / fwd:8.2f} forward passes of the classifier per image (target <= 3)")


if __name__ == "__main__":
    main()
