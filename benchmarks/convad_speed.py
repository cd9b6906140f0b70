"""Cost of a ConvAD forward, as a ratio to a plain forward of the same model and batch.

Both are timed in the same run (fastest of a few calls, no gradients), for ResNet-50
(random weights: the cost does not depend on them) and the offline EfficientNet-Lite0,
with a random half-visible mask per image.

It also times one complete causal explanation (``xh.causal.search``: responsibility
with ``--iters`` partition trees, then extraction) of a sample photo with
EfficientNet-Lite0, by ConvAD and by painting 0, and gives it in seconds and in plain
forward passes of one image.

Run: ``.venv/bin/python benchmarks/convad_speed.py [--batch 64] [--device cpu] [--iters 20]``.
Target (chapter 4): at most 1.5 at batch 64 on the CPU.
"""

from __future__ import annotations

import argparse

import torch
import torchvision
from common import best

from xaihelpers import causal, convad, data, models


def measure(name: str, model: torch.nn.Module, batch: int, device: str, repeat: int) -> dict:
    model = model.to(device).eval()
    x = torch.randn(batch, 3, 224, 224, device=device)
    masks = (torch.rand(batch, 1, 7, 7, device=device) > 0.5).float()
    masks = torch.nn.functional.interpolate(masks, size=(224, 224), mode="nearest")[:, 0]
    ad = convad.wrap(model)
    with torch.no_grad():
        plain = best(lambda: model(x), repeat)
        wrapped = best(lambda: ad(x, masks), repeat)
    return {"model": name, "batch": batch, "plain_s": plain, "ratio": wrapped / plain}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--iters", type=int, default=20, help="partition trees of the causal explanation")
    args = ap.parse_args()
    torch.manual_seed(0)
    rows = [measure("ResNet-50", torchvision.models.resnet50(), args.batch, args.device, args.repeat),
            measure("EfficientNet-Lite0", models.load_model("efficientnet_lite0").model, args.batch, args.device,
                    args.repeat)]
    print(f"device: {args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'model':20s} {'batch':>5s} {'plain forward s':>16s} {'ConvAD / plain':>15s}")
    for r in rows:
        print(f"{r['model']:20s} {r['batch']:5d} {r['plain_s']:16.2f} {r['ratio']:15.2f}")
    print("ratio: ConvAD forward / plain forward, same model and batch (target <= 1.5)")
    net, prep, _ = models.load_model("efficientnet_lite0", device=args.device)
    x = data.to_batch(data.sample_images(["chelsea"]).values(), prep, device=args.device)
    with torch.no_grad():
        one = best(lambda: net(x), args.repeat)
    print(f"\none complete causal explanation of a photo (EfficientNet-Lite0, {args.iters} trees):")
    print(f"{'occlusion':12s} {'seconds':>8s} {'queries':>8s} {'in 1-image forwards':>20s}")
    for how in ("convad", "zero"):
        e = causal.search(net, x, how=how, rule="lenient", iters=args.iters, verbose=False)[0]
        print(f"{how:12s} {e.seconds:8.1f} {e.queries:8d} {e.seconds / one:20.0f}")


if __name__ == "__main__":
    main()
