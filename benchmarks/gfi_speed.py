"""Speed of Guided Feature Inversion, as ratios measured in one run.

For each model, the reference is one forward+backward pass of one image (loss on the
logits, gradients for the input and every parameter, as in a training step). The
script prints the time per image of ``gfi.explain`` with the authors' schedule
(80 iterations) divided by that reference, for one image alone and for a batch of
N images, and the batch's cost relative to N separate runs.

Run: ``.venv/bin/python benchmarks/gfi_speed.py [--batch 8] [--device cpu]``.
Target (chapter 2): at most 100 reference passes per image, and a batch well under
N times one image.
"""

from __future__ import annotations

import argparse
import torch
import torchvision

from common import best, reference_pass

from xaihelpers import gfi, models


def measure(name: str, model: torch.nn.Module, size: int, batch: int, device: str, repeat: int) -> dict:
    model = model.to(device).eval()
    x = torch.randn(batch, 3, size, size, device=device)
    gfi.explain(model, x[:1], 0, iterations=2, stage1_iterations=1)  # warm-up (80 iterations warm themselves)
    ref = best(lambda: reference_pass(model, x[:1]), repeat=20)
    one = best(lambda: gfi.explain(model, x[:1], 0), repeat=repeat, warm_up=False)
    many = best(lambda: gfi.explain(model, x, 0), repeat=repeat, warm_up=False)
    model.zero_grad(set_to_none=True)
    return {"model": name, "input": size, "reference_ms": 1e3 * ref, "gfi_one_ratio": one / ref,
            "gfi_batch_ratio_per_image": many / batch / ref, "batch": batch, "batch_vs_n_alone": many / (batch * one)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeat", type=int, default=1, help="timed GFI runs per setting (the fastest counts)")
    args = ap.parse_args()
    torch.manual_seed(0)
    rows = [
        measure("benchmark CNN (ReLU)", models.BenchmarkCNN("relu"), 64, args.batch, args.device, args.repeat),
        measure("ResNet-18 (random weights)", torchvision.models.resnet18(), 224, args.batch, args.device, args.repeat),
    ]
    print(f"device: {args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'model':28s} {'input':>5s} {'fwd+bwd ms':>10s} {'GFI/img (1)':>12s} {'GFI/img (N)':>12s} {'N':>3s} {'N batch / N x 1':>16s}")
    for r in rows:
        print(f"{r['model']:28s} {r['input']:5d} {r['reference_ms']:10.1f} {r['gfi_one_ratio']:12.1f} "
              f"{r['gfi_batch_ratio_per_image']:12.1f} {r['batch']:3d} {r['batch_vs_n_alone']:16.2f}")
    print("ratios: GFI time per image / one forward+backward pass of one image (target <= 100);"
          " last column: one batch of N / N single runs (target well under 1)")


if __name__ == "__main__":
    main()
