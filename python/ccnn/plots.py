"""Figures (matplotlib, Agg backend, PNG): learning curves (paper Fig. 4), AU co-occurrence matrices and
learned association graphs (Fig. 3)."""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _save(fig, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_learning_curves(runs: dict, path, steps: dict | None = None) -> Path:
    """NLL (left) and average ICC (right) against the training iteration, training (solid) and
    validation (dashed), one colour per run. `runs`: {label: list of "epoch" records (trainer
    history)}; `steps`: optional {label: list of "step" records}, drawn faintly as the batch NLL."""
    fig, (ax_nll, ax_icc) = plt.subplots(1, 2, figsize=(11, 4))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (label, history) in enumerate(runs.items()):
        c = colours[i % len(colours)]
        x = [r["iteration"] for r in history]
        if steps and steps.get(label):
            s = steps[label]
            ax_nll.plot([r["iteration"] for r in s], [r["unary"] + r["pairwise"] for r in s], color=c,
                        alpha=0.2, linewidth=0.8)
        for split, style in (("train", "-"), ("val", "--")):
            if all(split in r for r in history):
                ax_nll.plot(x, [r[split]["nll"] for r in history], style, color=c, marker=".",
                            label=f"{label} ({'training' if split == 'train' else 'validation'})")
                ax_icc.plot(x, [r[split]["icc_avg"] for r in history], style, color=c, marker=".",
                            label=f"{label} ({'training' if split == 'train' else 'validation'})")
    ax_nll.set(xlabel="iteration", ylabel="negative composite log-likelihood per sample", title="NCLL")
    ax_icc.set(xlabel="iteration", ylabel="average ICC(3,1)", title="ICC")
    for ax in (ax_nll, ax_icc):
        ax.grid(alpha=0.3)
    ax_icc.legend(fontsize=7, loc="lower right")
    return _save(fig, path)


def cooccurrence(labels: np.ndarray) -> np.ndarray:
    """(Q, Q) percentage of the annotated frames in which both AUs are active (intensity > 0)."""
    labels = np.asarray(labels)
    Q = labels.shape[1]
    out = np.full((Q, Q), np.nan)
    for r in range(Q):
        for s in range(Q):
            both = (labels[:, r] >= 0) & (labels[:, s] >= 0)
            if both.any():
                out[r, s] = 100.0 * np.mean((labels[both, r] > 0) & (labels[both, s] > 0))
    return out


def plot_cooccurrence(datasets: dict, path) -> Path:
    """One co-occurrence matrix per dataset. `datasets`: {name: (labels (N, Q), AU numbers)}."""
    n = len(datasets)
    fig, axes = plt.subplots(1, n, figsize=(4.8 * n, 4.2), squeeze=False, layout="constrained")
    for ax, (name, (labels, aus)) in zip(axes[0], datasets.items()):
        m = cooccurrence(labels)
        im = ax.imshow(m, cmap="viridis", vmin=0, vmax=max(1.0, np.nanmax(m)))
        ax.set_xticks(range(len(aus)), [str(a) for a in aus], fontsize=7)
        ax.set_yticks(range(len(aus)), [str(a) for a in aus], fontsize=7)
        ax.set(title=f"{name}: co-occurrence (%)", xlabel="AU", ylabel="AU")
        fig.colorbar(im, ax=ax, fraction=0.046)
    return _save(fig, path)


def plot_association_graph(association: dict, path, aus_by_dataset: dict | None = None) -> Path:
    """Learned association graphs, one per dataset: AUs on a circle, edge width proportional to
    |theta| (red positive, blue negative). `association`: {dataset: {(au_r, au_s): theta}} as
    returned by CCNN.association(); `aus_by_dataset` adds AUs left without edges."""
    n = len(association)
    fig, axes = plt.subplots(1, n, figsize=(4.6 * n, 4.6), squeeze=False)
    for ax, (name, edges) in zip(axes[0], association.items()):
        nodes = set((aus_by_dataset or {}).get(name, []))
        for a, b in edges:
            nodes |= {a, b}
        nodes = sorted(nodes)
        angle = {au: 2 * math.pi * i / max(1, len(nodes)) for i, au in enumerate(nodes)}
        pos = {au: (math.cos(t), math.sin(t)) for au, t in angle.items()}
        largest = max([abs(v) for v in edges.values()] + [1e-12])
        for (a, b), theta in sorted(edges.items(), key=lambda kv: abs(kv[1])):
            (x0, y0), (x1, y1) = pos[a], pos[b]
            ax.plot([x0, x1], [y0, y1], color="tab:red" if theta > 0 else "tab:blue",
                    linewidth=0.3 + 6.0 * abs(theta) / largest, alpha=0.75, solid_capstyle="round")
        for au, (x, y) in pos.items():
            ax.scatter([x], [y], s=420, color="white", edgecolors="black", zorder=3)
            ax.text(x, y, str(au), ha="center", va="center", fontsize=8, zorder=4)
        ax.set(title=f"{name}\nlearned association, max |theta| {largest:.2f}", xlim=(-1.3, 1.3),
               ylim=(-1.3, 1.3), aspect="equal")
        ax.axis("off")
    return _save(fig, path)


def plot_seed_comparison(summary: dict, path) -> Path:
    """Average ICC per variant over seeds (ccnn.seeds summary): the seeds as dots, the mean as a bar
    and the bootstrap interval as a black line."""
    names = list(summary["variants"])
    fig, ax = plt.subplots(figsize=(1.2 * len(names) + 2, 3.8))
    for i, name in enumerate(names):
        v = summary["variants"][name]
        ax.bar(i, v["icc_avg"][0], color="tab:blue", alpha=0.35, width=0.6)
        ax.plot([i, i], v["icc_interval"], color="black", linewidth=2)
        seeds = v["icc_by_seed"]
        ax.scatter(i + np.linspace(-0.15, 0.15, len(seeds)), seeds, s=14, color="tab:blue", zorder=3)
    pct = round(summary["level"] * 100)
    ax.set_xticks(range(len(names)), names, rotation=20)
    ax.set(ylabel="average ICC(3,1)", title=f"{len(summary['seeds'])} seeds: mean (bar), seeds (dots), "
                                             f"{pct}% bootstrap interval (line)")
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)
