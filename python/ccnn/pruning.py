"""Edge pruning at the end of training (the paper drops low-association edges), with a loud warning
when it would leave a dataset without any edge."""
from __future__ import annotations

import warnings

from .model import CCNN


class AllEdgesPruned(UserWarning):
    """Pruning removed every edge of a dataset: the structured model is left with unaries only."""


def prune_and_report(model: CCNN, threshold: float) -> tuple[int, dict]:
    """Prune `model`'s edges below `threshold` (none when threshold <= 0 or without a pairwise head).
    Returns (edges removed, {dataset: (edges kept, edges before)}); warns AllEdgesPruned for every
    dataset left with none."""
    before = {d: len(v) for d, v in model.edge_list().items()}
    removed = 0
    if model.has_pairwise and threshold > 0:
        largest = {d: max(map(abs, a.values()), default=0.0) for d, a in model.association().items()}
        removed = model.prune_edges(threshold)
        after = model.edge_list()
        for dataset, n in before.items():
            if n and not after[dataset]:
                warnings.warn(
                    f"pruning removed all {n} edges of {dataset}: the largest |association| was "
                    f"{largest[dataset]:.3g} < prune_threshold {threshold:g}, so the saved model has no "
                    f"pairwise terms for it (an OCNN). The pairwise parameters barely moved: train "
                    f"longer, raise pairwise_lr_scale, or lower prune_threshold (0 keeps every edge)",
                    AllEdgesPruned, stacklevel=3)
    return removed, {d: (len(v), before[d]) for d, v in model.edge_list().items()}
