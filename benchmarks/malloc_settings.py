"""How much the glibc settings of the Makefile save: one workload, timed in two processes.

The Makefile (and ``scripts/build_book.py``) keep freed memory in the process
(``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``, ``MALLOC_TOP_PAD_``). Without them
glibc returns every large freed tensor to the system and page-faults it in again at the
next step. This script runs the same workloads (integrated gradients on 16 benchmark
images, an Activation Matching U-Net step, a forward+backward pass of EfficientNet-Lite0 on
two photos) once with glibc's defaults and once with the settings, each in a fresh process
with one thread, and prints the time ratios measured in this run::

    python benchmarks/malloc_settings.py

The ratios are what counts; the seconds depend on the machine and on what else runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

SETTINGS = {"MALLOC_MMAP_THRESHOLD_": "1073741824", "MALLOC_TRIM_THRESHOLD_": "1073741824", "MALLOC_TOP_PAD_": "268435456"}

WORKLOAD = r"""
import json, time, torch, xaihelpers as xh
torch.set_num_threads(1)
def best(f, n):
    f(); out = []
    for _ in range(n):
        t = time.perf_counter(); f(); out.append(time.perf_counter() - t)
    return min(out)
cnn, _, _ = xh.load_model("fmnist_cnn_relu")
xb, yb = torch.randn(16, 3, 64, 64), torch.zeros(16, dtype=torch.long)
net = xh.actmatch.MaskNet((16, 32, 64, 128), 256)
x1 = torch.randn(1, 3, 64, 64)
lite, _, _ = xh.load_model("efficientnet_lite0")
xp = torch.randn(2, 3, 224, 224, requires_grad=True)
print(json.dumps({
    "integrated gradients, 16 benchmark images": best(lambda: xh.baselines.explain(cnn, xb, yb, "integrated_gradients"), 3),
    "Activation Matching U-Net step (64 px)": best(lambda: net(x1).sum().backward(), 20),
    "EfficientNet-Lite0 forward+backward, 2 photos": best(lambda: lite(xp).sum().backward(), 3),
}))
"""


def run(settings: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS}
    env.update({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", **(SETTINGS if settings else {})})
    out = subprocess.run([sys.executable, "-c", WORKLOAD], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    plain, kept = run(False), run(True)
    print(f"{'workload':48s} {'glibc default (s)':>18s} {'settings (s)':>13s} {'ratio':>6s}")
    for k in plain:
        print(f"{k:48s} {plain[k]:18.3f} {kept[k]:13.3f} {kept[k] / plain[k]:6.2f}")


if __name__ == "__main__":
    main()
