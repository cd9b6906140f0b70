"""Speed of Sharing Ratio Decomposition, as ratios measured in one run.

The reference is one forward+backward pass of one image (gradients for the input and
every parameter). For ResNet-50 and VGG-16 at 224 px (random weights: the cost does
not depend on them) and the benchmark CNN, the script prints the time per image of
``srd.explain`` down to the input (SRD-input) as a ratio to that reference, at batch 1
and at batch N.

Run: ``.venv/bin/python benchmarks/srd_speed.py [--batch 8] [--device cpu]``.
Targets (chapter 3): at most 2 at batch 1 for ResNet-50 and VGG-16 on the CPU, and a
per-image ratio at batch N below the one at batch 1. The authors' code takes about 6.7.
"""

from __future__ import annotations

import argparse

import torch
import torchvision
from common import best, reference_pass

from xaihelpers import benchmark_models, srd


def measure(name: str, model: torch.nn.Module, size: int, batch: int, device: str, repeat: int) -> dict:
    model = model.to(device).eval()
    x = torch.randn(batch, 3, size, size, device=device)
    ref = best(lambda: reference_pass(model, x[:1]), repeat=3 * repeat)
    one = best(lambda: srd.explain(model, x[:1], 0), repeat=repeat)
    many = best(lambda: srd.explain(model, x, 0), repeat=repeat)
    return {"model": name, "input": size, "reference_ms": 1e3 * ref, "one": one / ref, "batch": batch,
            "per_image_batched": many / batch / ref}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    torch.manual_seed(0)
    rows = [
        measure("ResNet-50", torchvision.models.resnet50(), 224, args.batch, args.device, args.repeat),
        measure("VGG-16", torchvision.models.vgg16(), 224, args.batch, args.device, args.repeat),
        measure("benchmark CNN (ReLU)", benchmark_models.BenchmarkCNN("relu"), 64, args.batch, args.device, args.repeat),
    ]
    print(f"device: {args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'model':22s} {'input':>5s} {'fwd+bwd ms':>10s} {'SRD/img (1)':>12s} {'SRD/img (N)':>12s} {'N':>3s}")
    for r in rows:
        print(f"{r['model']:22s} {r['input']:5d} {r['reference_ms']:10.1f} {r['one']:12.2f} "
              f"{r['per_image_batched']:12.2f} {r['batch']:3d}")
    print("ratios: SRD-input time per image / one forward+backward pass of one image "
          "(targets: <= 2 at batch 1 for ResNet-50 and VGG-16; batched below unbatched)")


if __name__ == "__main__":
    main()
