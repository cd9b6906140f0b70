"""Speed of Guided Feature Inversion, as ratios measured in one run.

For each model, the reference is one forward+backward pass of one image (loss on the
logits, gradients for the input and every parameter, as in a training step). The
script prints the time per image of ``gfi.explain`` with the authors' schedule
(80 iterations) divided by that reference, for one image alone and for a batch of
N images, and the batch's cost relative to N separate runs. Beside it, the same
relative cost for the network alone: one forward and input-gradient backward pass of
2N images (weights frozen, the shape of a stage-2 step) against N passes of 2 images.
That column is what batching gives the network's own kernels on this device; GFI's
column can be lower, because its work outside the network (mask, blend, Adam, Python)
is paid once per step whatever N is.

Run: ``.venv/bin/python benchmarks/gfi_speed.py [--batch 8] [--device cuda] [--rounds 2]``.
Target (chapter 2): at most 100 reference passes per image, and a batch well under
N times one image.
"""

from __future__ import annotations

import argparse

import torch
import torchvision
from tqdm.auto import tqdm

from common import best, reference_pass

from xaihelpers import benchmark_models, gfi
from xaihelpers.hooks import frozen_weights


def measure(name: str, model: torch.nn.Module, size: int, batch: int, device: str, rounds: int,
            iterations: int = 80) -> dict:
    """Time everything in ``rounds`` interleaved rounds and keep each quantity's fastest.

    A slow spell of a shared machine only ever adds time, so the minimum over rounds
    spread across the run is the estimate least disturbed by it.
    """
    model = model.to(device).eval()
    x = torch.randn(batch, 3, size, size, device=device)
    gfi.explain(model, x[:1], 0, iterations=2, stage1_iterations=1, verbose=False)  # warm-up
    schedule = {"iterations": iterations, "stage1_iterations": iterations // 8}  # the authors: 10 of 80
    times: dict[str, list[float]] = {"ref": [], "one": [], "many": [], "two": [], "both": []}
    for _ in tqdm(range(rounds), desc=name, leave=False):
        times["ref"].append(best(lambda: reference_pass(model, x[:1]), repeat=20))
        times["one"].append(best(lambda: gfi.explain(model, x[:1], 0, verbose=False, **schedule), repeat=1, warm_up=False))
        times["many"].append(best(lambda: gfi.explain(model, x, 0, verbose=False, **schedule), repeat=1, warm_up=False))
        with frozen_weights(model):  # what a GFI step runs: forward, and backward to the input only
            times["two"].append(best(lambda: reference_pass(model, torch.cat([x[:1], x[:1]])), repeat=10))
            times["both"].append(best(lambda: reference_pass(model, torch.cat([x, x])), repeat=5))
    model.zero_grad(set_to_none=True)
    ref, one, many, two, both = (min(times[k]) for k in ("ref", "one", "many", "two", "both"))
    return {"model": name, "input": size, "reference_ms": 1e3 * ref, "gfi_one_ratio": one / ref,
            "gfi_batch_ratio_per_image": many / batch / ref, "batch": batch, "batch_vs_n_alone": many / (batch * one),
            "network_batch_vs_n_alone": both / (batch * two)}


MODELS = {
    "cnn": ("benchmark CNN (ReLU)", lambda: benchmark_models.BenchmarkCNN("relu"), 64),
    "resnet18": ("ResNet-18 (random weights)", lambda: torchvision.models.resnet18(), 224),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--rounds", type=int, default=2, help="interleaved timing rounds (the fastest of each counts)")
    ap.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    ap.add_argument("--iterations", type=int, default=80, help="GFI iterations (the authors: 80; the target assumes 80)")
    args = ap.parse_args()
    if args.batch < 2 or args.rounds < 1 or args.iterations < 2:
        ap.error("expected --batch >= 2, --rounds >= 1 and --iterations >= 2")
    torch.manual_seed(0)
    rows = [measure(label, build(), size, args.batch, args.device, args.rounds, args.iterations)
            for label, build, size in (MODELS[m] for m in args.models)]
    print(f"device: {args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{args.iterations} GFI iterations, fastest of {args.rounds} rounds")
    print(f"{'model':28s} {'input':>5s} {'fwd+bwd ms':>10s} {'GFI/img (1)':>12s} {'GFI/img (N)':>12s} {'N':>3s} "
          f"{'N batch / N x 1':>16s} {'network alone':>14s}")
    for r in rows:
        print(f"{r['model']:28s} {r['input']:5d} {r['reference_ms']:10.1f} {r['gfi_one_ratio']:12.1f} "
              f"{r['gfi_batch_ratio_per_image']:12.1f} {r['batch']:3d} {r['batch_vs_n_alone']:16.2f} "
              f"{r['network_batch_vs_n_alone']:14.2f}")
    print("ratios: GFI time per image / one forward+backward pass of one image (target <= 100);"
          " N batch / N x 1: one GFI batch of N / N single runs (target well under 1);"
          " network alone: one forward+input-backward of 2N images / N of 2 images (what batching gives the network itself)")


if __name__ == "__main__":
    main()
