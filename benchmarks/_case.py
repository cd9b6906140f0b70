"""One row of the speed table (see ``python -m benchmarks``): ``_case.py METHOD MODEL DEVICE``, prints JSON."""

from __future__ import annotations

import json
import resource
import sys
import time

import torch

import xaihelpers as xh
from xaihelpers.runtime import best_time


def _captum_lrp(m, x, t):
    from captum.attr import LRP

    return LRP(m).attribute(x.clone().requires_grad_(True), target=t).sum(1)


#: name -> (explain(model, x, target), batch size, factor: the timed run is 1/factor of the method's work)
CASES = {
    "GFI (authors' schedule)": (lambda m, x, t: xh.gfi.explain(m, x, t, verbose=False), 4, 1),
    "Mask, Fong & Vedaldi (300 steps)": (lambda m, x, t: xh.perturbation.explain(m, x, t, verbose=False), 4, 1),
    "SRD (input)": (lambda m, x, t: xh.srd.explain(m, x, t), 4, 1),
    "causal, ConvAD (20 trees)": (lambda m, x, t: xh.causal.explain(m, x, t, how="convad", rule="lenient", verbose=False), 1, 1),
    "causal, masking 0 (20 trees)": (lambda m, x, t: xh.causal.explain(m, x, t, how="zero", verbose=False), 1, 1),
    "Activation Matching, per image (880 steps)": (lambda m, x, t: xh.actmatch.explain(m, x, t, steps=88, verbose=False), 1, 10),
    "Activation Matching, amortised": (lambda m, x, t: xh.actmatch.amortised_masks(xh.actmatch.MaskNet().to(x.device).eval(), x), 64, 1),
    "Activation Matching, amortised, narrow U-Net (8-64)": (
        lambda m, x, t: xh.actmatch.amortised_masks(xh.actmatch.MaskNet((8, 16, 32, 64), 128).to(x.device).eval(), x), 64, 1),
    "captum Integrated Gradients (32 steps)": (lambda m, x, t: xh.baselines.explain(m, x, t, "integrated_gradients"), 4, 1),
    "captum LRP": (_captum_lrp, 4, 1),
    "zennit LRP epsilon-plus": (lambda m, x, t: xh.baselines.explain(m, x, t, "lrp_epsilon_plus"), 4, 1),
    "pytorch-grad-cam Grad-CAM": (lambda m, x, t: xh.baselines.explain(m, x, t, "gradcam"), 4, 1),
    "pytorch-grad-cam Score-CAM": (lambda m, x, t: xh.baselines.explain(m, x, t, "scorecam"), 4, 1),
}


#: a call shorter than this is timed a second time, and the second call counts
WARM_LIMIT_S = 30.0


def _peak_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def main(method: str, model_name: str, device: str) -> None:
    fn, batch, factor = CASES[method]
    dev = torch.device(device)
    torch.manual_seed(0)
    model, _, _ = xh.load_model(model_name, device=dev)
    side = 64 if model_name.startswith("fmnist") else 224
    x = torch.randn(batch, 3, side, side, device=dev)
    with torch.no_grad():
        t = model(x).argmax(1)
    x1 = x[:1].clone().requires_grad_(True)
    ref = best_time(lambda: model(x1).sum().backward(), repeat=5)
    model.zero_grad(set_to_none=True)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    ref_peak = _peak_mb(dev)
    calls = [_timed_call(fn, model, x, t, dev)]
    if calls[0] < WARM_LIMIT_S:  # the first call pays one-time set-up (imports, kernel choice); time another
        calls.append(_timed_call(fn, model, x, t, dev))
    per_image = calls[-1] * factor / batch
    notes = [f"timed on 1/{factor} of the steps, scaled"] if factor > 1 else []
    if len(calls) == 1:
        notes.append("first call only (it took over half a minute)")
    print(json.dumps({
        "method": method, "model": model_name, "batch": batch, "seconds per image": per_image,
        "/ forward+backward": per_image / ref, "first call, seconds per image": calls[0] * factor / batch,
        "peak MB": _peak_mb(dev), "model fwd+bwd peak MB": ref_peak,
        "threads": torch.get_num_threads(), "note": "; ".join(notes)}))


def _timed_call(fn, model, x, t, dev: torch.device) -> float:
    t0 = time.perf_counter()
    fn(model, x, t)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    return time.perf_counter() - t0


if __name__ == "__main__":
    main(*sys.argv[1:4])
