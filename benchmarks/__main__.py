"""The book's speed table: every method and the reference libraries' explainers, one table.

Run from the repository root::

    python -m benchmarks [--models fmnist_cnn_relu efficientnet_lite0] [--device cpu] [--out benchmarks/results]

Each (method, model) case runs in its own process (``benchmarks/_case.py``), so that its
peak memory is its own. A case times the method on a batch and one forward+backward
pass of the same model on one image *in the same process*, and reports seconds per
image, their ratio, and the process's peak resident memory (CPU) or peak allocated
memory (CUDA) next to the model's own forward+backward peak. The first call of a
method pays one-time set-up (imports, the choice of convolution kernels for new
shapes); when it takes under half a minute a second call is timed and counts, and the
first call's time is kept in its own column. Slow per-image optimisers are timed on a
tenth of their steps and scaled (said in the table). The table is
written as markdown and CSV to ``--out`` (``speed.md``, ``speed.csv``) and printed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODELS = ("fmnist_cnn_relu", "efficientnet_lite0")


def main() -> None:
    sys.path.insert(0, str(HERE))
    from _case import CASES

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=list(MODELS))
    ap.add_argument("--methods", nargs="+", default=list(CASES), help="subset of the cases")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=str(HERE / "results"))
    ap.add_argument("--update", action="store_true", help="replace only the measured rows of an existing table")
    args = ap.parse_args()
    rows = []
    for model in args.models:
        for method in args.methods:
            print(f"{method} on {model} ...", flush=True)
            proc = subprocess.run([sys.executable, str(HERE / "_case.py"), method, model, args.device],
                                  capture_output=True, text=True)
            lines = [l for l in proc.stdout.splitlines() if l.startswith("{")]
            if proc.returncode or not lines:
                err = (proc.stderr.strip().splitlines() or ["no output"])[-1]
                rows.append({"method": method, "model": model, "note": f"failed: {err[:120]}"})
            else:
                rows.append(json.loads(lines[-1]))
            print("   ", rows[-1], flush=True)
    import pandas as pd

    table = pd.DataFrame(rows)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.update and (out / "speed.csv").is_file():
        old = pd.read_csv(out / "speed.csv")
        new_keys = set(zip(table["method"], table["model"]))
        old = old[[k not in new_keys for k in zip(old["method"], old["model"])]]
        order = {m: i for i, m in enumerate(CASES)}
        table = pd.concat([old, table], ignore_index=True)
        table = table.sort_values(["model", "method"], key=lambda c: c.map(order) if c.name == "method" else c,
                                  kind="stable", ascending=[False, True]).reset_index(drop=True)
    table.to_csv(out / "speed.csv", index=False)
    md = table.astype(object).where(table.notna(), "").to_markdown(index=False, floatfmt=".3g")
    header = f"device: {args.device}; seconds per image and peak memory measured in one process per row\n\n"
    (out / "speed.md").write_text(header + md + "\n")
    print(header + md)


if __name__ == "__main__":
    main()
