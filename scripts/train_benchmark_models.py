"""Train the cluttered Fashion-MNIST benchmark CNNs and write their checkpoints.

Reproduces ``xaihelpers/checkpoints/fmnist_cnn_<activation>.pt`` and
``xaihelpers/checkpoints/manifest.json`` (sha256, test accuracy, seed, settings,
training time). Run from the repository root::

    python scripts/train_benchmark_models.py                 # all activations
    python scripts/train_benchmark_models.py relu gelu       # some of them
    python scripts/train_benchmark_models.py --shuffled-labels   # the data-randomisation CNN
    python scripts/train_benchmark_models.py --small     # the ReLU CNN of the small-object setting

Chapter 1 (``notebooks/01_evaluating_explanations.ipynb``) reports the accuracies.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from xaihelpers import benchmark_models


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("activations", nargs="*", default=list(benchmark_models.ACTIVATIONS))
    parser.add_argument("--seed", type=int, default=benchmark_models.TRAIN_SEED)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--shuffled-labels", action="store_true",
                        help="train only the ReLU CNN on permuted labels (chapter 6's data randomisation)")
    parser.add_argument("--small", action="store_true",
                        help="train only the ReLU CNN on the benchmark's small-object setting (chapter 3's pointing game)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    benchmark_models.CHECKPOINT_DIR.mkdir(exist_ok=True)
    manifest_path = benchmark_models.CHECKPOINT_DIR / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    if args.shuffled_labels:
        start = time.time()
        model, memorised, acc = benchmark_models.train_shuffled_label_model(seed=args.seed, device="cpu")
        path = benchmark_models.CHECKPOINT_DIR / f"fmnist_cnn_{benchmark_models.SHUFFLED_NAME}.pt"
        torch.save({k: v.clone() for k, v in model.state_dict().items()}, path)
        manifest[benchmark_models.SHUFFLED_NAME] = {
            "file": path.name, "sha256": benchmark_models.file_sha256(path), "train_accuracy_permuted": round(memorised, 4),
            "test_accuracy": round(acc, 4), "seed": args.seed, "settings": benchmark_models.SHUFFLED_SETTINGS,
            "train_seconds": round(time.time() - start, 1), "script": "scripts/train_benchmark_models.py --shuffled-labels",
            "torch": torch.__version__, "machine": f"{platform.machine()}, {args.threads} CPU threads",
        }
        manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        print(f"shuffled labels: memorised {memorised:.4f}, test accuracy {acc:.4f} -> {path}")
        return
    runs = [(benchmark_models.SMALL_NAME, "relu", "small")] if args.small else [(a, a, "standard") for a in args.activations]
    for key, act, setting in runs:
        start = time.time()
        model, acc = benchmark_models.train_benchmark_model(act, seed=args.seed, device="cpu", setting=setting)
        path = benchmark_models.checkpoint_path(key)
        torch.save({k: v.clone() for k, v in model.state_dict().items()}, path)
        manifest[key] = {
            "file": path.name,
            "benchmark_setting": setting,
            "sha256": benchmark_models.file_sha256(path),
            "test_accuracy": round(acc, 4),
            "seed": args.seed,
            "settings": benchmark_models.TRAIN_SETTINGS,
            "train_seconds": round(time.time() - start, 1),
            "script": "scripts/train_benchmark_models.py",
            "torch": torch.__version__,
            "machine": f"{platform.machine()}, {args.threads} CPU threads",
        }
        manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        print(f"{key}: test accuracy {acc:.4f} in {manifest[key]['train_seconds']} s -> {path}")


if __name__ == "__main__":
    main()
