"""Findings 2 and 3 of issue 32, before and after: signed sanity checks, and valid deletion/insertion defaults.

Finding 2: Input x Gradient's rank correlation with the trained map at three stages of
chapter 1's cascade (the output layer, a middle stage, every layer random): the old
package reports the absolute maps' correlation only; the new one the absolute and the
signed one side by side (the row gives the signed one after, the absolute one before).

Finding 3: deletion and insertion AUC of the object mask used as the map, of its
inverse and of a random mask of the same area, at the package's defaults before (RISE's
blur scaled to 64 px, zero fill) and after (5-px blur as insertion's start and as
deletion's fill), on the first 32 cluttered Fashion-MNIST test images; and whether
:func:`xaihelpers.validity.metric_validity` calls each valid.
"""

from __future__ import annotations

N_IMAGES = 32
N_SANITY = 8


def rows(old, new) -> list[dict]:
    import numpy as np
    import torch

    torch.manual_seed(0)
    ds = new.benchmark.cluttered_fashion_mnist("test", n=N_IMAGES, verbose=False)
    model, prep, _ = new.load_model("fmnist_cnn_relu", device="cpu")
    x, y, masks = prep.normalize(ds.images), ds.labels, ds.masks
    out = []

    # ---- finding 2: Input x Gradient through the cascade
    xs, ys = x[:N_SANITY], y[:N_SANITY]
    before = old.sanity.cascading_randomisation(old.explainers.get("input_x_gradient"), model, xs, ys)
    after = new.sanity.cascading_randomisation(new.explainers.get("input_x_gradient"), model, xs, ys)
    stages = sorted(after["stage"].unique())
    picks = [stages[1], stages[len(stages) // 2], stages[-1]]
    for s in picks:
        label = after.loc[after["stage"] == s, "label"].iloc[0]
        b = before.loc[before["stage"] == s, "similarity"].mean()
        a_abs = after.loc[after["stage"] == s, "similarity"].mean()
        a_sig = after.loc[after["stage"] == s, "signed"].mean()
        out.append({"finding": "2", "quantity": f"Input x Gradient, randomised down to {label}: rank correlation "
                    "reported (before: absolute only; after: signed)", "before": float(b), "after": float(a_sig)})
        out.append({"finding": "2", "quantity": f"Input x Gradient, randomised down to {label}: absolute rank correlation",
                    "before": float(b), "after": float(a_abs)})
    edges = new.sanity.cascading_randomisation(new.sanity.edge_detector, model, xs, ys)
    out.append({"finding": "2", "quantity": "edge-detector reference row, mean signed correlation over the cascade",
                "before": "no reference row", "after": float(edges.loc[edges["stage"] > 0, "signed"].mean())})

    # ---- finding 3: deletion / insertion on the ground truth
    m = masks.float()
    maps = {"object mask": m, "inverse": 1 - m, "random, same area": new.validity.random_masks(m, seed=0)}
    scores = {"before": {}, "after": {}}
    for kind, a in maps.items():
        scores["before"][kind] = old.model_metrics.deletion_insertion(model, x, a, y)
        scores["after"][kind] = new.model_metrics.deletion_insertion(model, x, a, y)
    for j, metric in enumerate(("deletion", "insertion")):
        for kind in maps:
            out.append({"finding": "3", "quantity": f"{metric} AUC of the {kind} at the package default "
                        f"(before: RISE's blur scaled to {5 * x.shape[-1] / 224:.2f} px, deletion to zero; after: "
                        f"a {new.model_metrics.BLUR_SIGMA:g} px blur, also deletion's fill)",
                        "before": float(np.mean(scores["before"][kind][j])), "after": float(np.mean(scores["after"][kind][j]))})
        verdicts = {}
        for when in ("before", "after"):
            s = {k: v[j] for k, v in scores[when].items()}
            want = "lower" if metric == "deletion" else "higher"
            ok = all(new.stats.paired(s["object mask"], s[c]).verdict == want for c in ("inverse", "random, same area"))
            verdicts[when] = "valid" if ok else "uninformative"
        out.append({"finding": "3", "quantity": f"{metric}: object mask beats inverse and random by 2 paired SE "
                    f"({N_IMAGES} images)", **verdicts})
    with torch.no_grad():
        blur_old = new.occlusion.rise_blur(x, 5 * x.shape[-1] / 224)
        blur_new = new.occlusion.rise_blur(x, new.model_metrics.BLUR_SIGMA)
        out.append({"finding": "3", "quantity": "share of images still right after insertion's starting blur",
                    "before": float((model(blur_old).argmax(1) == y).float().mean()),
                    "after": float((model(blur_new).argmax(1) == y).float().mean())})
    return out
