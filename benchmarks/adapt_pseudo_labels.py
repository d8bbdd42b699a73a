"""How good are `adapt`'s pseudo-identities? Round 1's clustering scored against the hidden ids.

Diagnosis only: `adapt` never reads identity labels, but CUHK03-detected's ``bounding_box_train``
has them, so the clusters that round 1 would form from the shipped default's features can be
scored pair by pair: precision (pairs put in one cluster that are one person), recall (pairs of
one person put in one cluster), F1. Rows: Cluster Contrast's fixed radius 0.6, a few other fixed
radii for context, and ``auto`` (UDAP's rule, what `adapt` does by default), each on plain and on
camera-centred features (``--camera-aware``). k1 30, k2 6, min_samples 4 (the defaults).
Nothing is chosen from these numbers: the default is the published rule, not the best row.

    .venv/bin/python -m benchmarks.adapt_pseudo_labels [--json out.json]
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import numpy as np

from reid_stra.engine.pseudo_labels import centre_per_camera, cluster_features, cluster_stats, density_radius
from reid_stra.models import load_model
from reid_stra.retrieval.extract import extract_features
from reid_stra.retrieval.ids import id_source
from reid_stra.retrieval.inputs import expand_inputs

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ROOT.parent / "shared" / "data" / "CUHK03-detected" / "bounding_box_train"
FIXED = (0.6, 0.5, 0.4)


def pair_scores(labels: np.ndarray, pids: np.ndarray) -> tuple[float, float, float]:
    """Pairwise precision, recall and F1 of ``labels`` (outliers in no pair) against ``pids``."""
    same_cluster = same_both = 0
    for cluster in np.unique(labels[labels >= 0]):
        members = pids[labels == cluster]
        same_cluster += len(members) * (len(members) - 1) // 2
        same_both += sum(n * (n - 1) // 2 for n in Counter(members.tolist()).values())
    same_person = sum(n * (n - 1) // 2 for n in Counter(pids.tolist()).values())
    precision = same_both / max(same_cluster, 1)
    recall = same_both / max(same_person, 1)
    return precision, recall, 2 * precision * recall / max(precision + recall, 1e-12)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    paths = expand_inputs([str(TRAIN)])
    parsed = id_source(None, None, required=("pid", "camid")).parse(paths)
    pids, cameras = np.asarray(parsed.pids), np.asarray(parsed.camids)
    model, info = load_model(None, None)
    features = extract_features(model, paths, input_size=info["cfg"].input_size, normalize=True, workers=1)
    rows = []
    for centred in (False, True):
        clustered = centre_per_camera(features, cameras) if centred else features
        for eps in (*FIXED, None):
            radius = eps if eps is not None else density_radius(clustered)
            labels = cluster_features(clustered, eps=radius)
            stats = cluster_stats(labels)
            precision, recall, f1 = pair_scores(labels, pids)
            rows.append(
                {
                    "camera_centred": centred,
                    "eps": "auto" if eps is None else eps,
                    "radius": round(float(radius), 4),
                    **stats.to_dict(),
                    "precision": round(precision, 3),
                    "recall": round(recall, 3),
                    "f1": round(f1, 3),
                }
            )
    print(f"{len(paths)} crops of {len(set(pids.tolist()))} people, {len(set(cameras.tolist()))} cameras")
    print("| features | eps | clusters | outliers | largest | pair precision | pair recall | F1 |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        eps = f"auto ({row['radius']:.3f})" if row["eps"] == "auto" else f"{row['eps']:g}"
        print(
            f"| {'camera-centred' if row['camera_centred'] else 'plain'} | {eps} | {row['clusters']} | "
            f"{row['outliers']} | {row['largest']} | {row['precision']:.3f} | {row['recall']:.3f} | "
            f"{row['f1']:.3f} |"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
