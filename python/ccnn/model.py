"""The CCNN model: the paper's CNN feature extractor with an output head per baseline of Table 1.

    head       unary potentials                pairwise potentials                Table 1 name
    "softmax"  softmax over L levels per AU    none                               CNN
    "ordinal"  ordinal probit per AU           none                               OCNN
    "loglinear" ordinal probit per AU          log-linear L x L table per edge    SCNN
    "copula"   ordinal probit per AU           Frank copula per edge              CCNN

Several datasets: the model predicts the union of their AUs with shared unary parameters; each
dataset has its own edge set (pairs of AUs it annotates) and its own pairwise parameters, and a
sample uses the parameters of the dataset it comes from (`dataset_index`).

Unary and pairwise parameters are held per AU and per (dataset, edge) as separate tensors, so that
IBB training (Algorithm 1) can update one AU or one edge while every other parameter stays
bit-for-bit unchanged (see `unary_parameters`, `pairwise_parameters`).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

import ccnn_ext

from .arguments import au_list, whole_number

HEADS = ("softmax", "ordinal", "loglinear", "copula")
NUM_LEVELS = 6  # FACS intensities 0..5
MAX_LEVELS, MAX_IMAGE_SIZE, MAX_FEATURES = 256, 1024, 65536
PADDINGS = ("same", "valid")  # conv padding of FeatureNet


class FeatureNet(nn.Module):
    """Three conv layers (9 x 9, 32/64/128 filters, ReLU, 2 x 2 max-pool each) and a fully connected
    layer to `num_features` features (ReLU). padding="same" keeps every input size from 8 x 8 up
    valid; padding="valid" (no padding) needs at least 64 x 64 and, at 96 x 96, does about 2.6x
    less convolution work (the paper does not say which it used)."""

    def __init__(self, image_size: int = 96, channels=(32, 64, 128), kernel_size: int = 9,
                 num_features: int = 128, padding: str = "same"):
        super().__init__()
        if padding not in PADDINGS:
            raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")
        shrink = 0 if padding == "same" else kernel_size - 1
        side = self._side(image_size, len(channels), shrink)
        if side < 1:
            smallest = self.min_image_size(padding, len(channels), kernel_size)
            raise ValueError(f"image_size must be at least {smallest} with padding={padding!r} and "
                             f"{len(channels)} {kernel_size} x {kernel_size} conv + 2 x 2 pool layers, "
                             f"got {image_size}")
        layers, prev = [], 1
        for c in channels:
            layers += [nn.Conv2d(prev, c, kernel_size, padding=kernel_size // 2 if padding == "same" else 0),
                       nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            prev = c
        self.conv = nn.Sequential(*layers)
        self.fc = nn.Linear(prev * side * side, num_features)
        self.image_size = image_size
        self.padding = padding
        for m in self.modules():  # He initialisation: unit-scale activations through the ReLUs
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)
        # channels-last (NHWC) convolutions: 1.2-1.4x faster CPU training steps than NCHW (bench_heads)
        self.conv.to(memory_format=torch.channels_last)

    @staticmethod
    def _side(image_size: int, layers: int, shrink: int) -> int:
        for _ in range(layers):
            image_size = (image_size - shrink) // 2
        return image_size

    @staticmethod
    def min_image_size(padding: str = "same", layers: int = 3, kernel_size: int = 9) -> int:
        """The smallest input side the network accepts (8 for 'same', 64 for 'valid' by default)."""
        shrink = 0 if padding == "same" else kernel_size - 1
        return next(n for n in range(1, 1 << 16) if FeatureNet._side(n, layers, shrink) >= 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dim() != 4 or images.shape[1] != 1 or images.shape[-1] != self.image_size \
                or images.shape[-2] != self.image_size:
            raise ValueError(f"images must be (B, 1, {self.image_size}, {self.image_size}), "
                             f"got {tuple(images.shape)}")
        maps = self.conv(images.contiguous(memory_format=torch.channels_last))
        return F.relu(self.fc(maps.contiguous().flatten(1)))


class SoftmaxUnary(nn.Module):
    """One AU's multinomial logistic output: logits = W f + b."""

    def __init__(self, num_features: int, num_levels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(num_levels, num_features) * 0.01)
        self.bias = nn.Parameter(torch.zeros(num_levels))

    def regularised(self):
        return [self.weight]


class OrdinalUnary(nn.Module):
    """One AU's ordinal probit regression: mu = beta . f, thresholds psi_1 < ... < psi_{L-1} as a first
    value plus softplus increments (at least MIN_STEP apart, so they stay strictly increasing in
    float32), sigma = exp(log_sigma) > 0; z_k = (psi_k - mu) / sigma."""

    MIN_STEP = 1e-3

    def __init__(self, num_features: int, num_levels: int):
        super().__init__()
        self.beta = nn.Parameter(torch.randn(num_features) * 0.01)
        self.psi_first = nn.Parameter(torch.zeros(()))
        self.psi_steps = nn.Parameter(torch.full((num_levels - 2,), 0.5413))  # steps of about 1
        self.log_sigma = nn.Parameter(torch.zeros(()))

    def thresholds(self) -> torch.Tensor:
        steps = F.softplus(self.psi_steps) + self.MIN_STEP
        return torch.cat([self.psi_first.reshape(1), self.psi_first + torch.cumsum(steps, 0)])

    def set_thresholds(self, psi: torch.Tensor) -> None:
        """Set the thresholds (increasing, L-1 values); used to start from the label frequencies."""
        steps = (psi[1:] - psi[:-1] - self.MIN_STEP).clamp_min(1e-3)
        with torch.no_grad():
            self.psi_first.copy_(psi[0])
            self.psi_steps.copy_(steps + torch.log(-torch.expm1(-steps)))  # softplus^-1

    def regularised(self):
        return [self.beta, self.thresholds()]


@dataclass
class Outputs:
    """What the model computes for a batch; the losses and the decoders read from it."""
    features: torch.Tensor                   # (B, F)
    dataset_index: torch.Tensor              # (B,) int64
    logits: torch.Tensor | None = None       # (B, Q, L) softmax head
    z: torch.Tensor | None = None            # (B, Q, L-1) standardised thresholds, ordinal heads


class CCNN(nn.Module):
    """CNN features + unary head + optional pairwise head over the union of AUs of several datasets.

    Args:
        aus: the union of AUs (model output order).
        head: one of HEADS.
        dataset_aus: {dataset name: AUs it annotates}; defines the datasets (order = dataset_index)
            and, for the pairwise heads, the initial fully connected edge set of each dataset.
        image_size, num_levels, num_features: network sizes, whole numbers in [1, 1024], [2, 256] and
            [1, 65536]; padding: "same" or "valid" (FeatureNet).
        edges: optional {dataset name: [(au_r, au_s), ...]} to start from a given edge set (names
            among dataset_aus's). A bad argument is a ValueError naming it.
    """

    def __init__(self, aus, head: str = "copula", dataset_aus: dict | None = None, image_size: int = 96,
                 num_levels: int = NUM_LEVELS, num_features: int = 128, edges: dict | None = None,
                 padding: str = "same"):
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {head!r}")
        self.aus = au_list(aus, "aus")
        dataset_aus = dataset_aus or {"default": self.aus}
        for name, value in (("dataset_aus", dataset_aus), ("edges", edges)):
            if value is not None and not isinstance(value, dict):
                raise ValueError(f"{name} must be a dict keyed by dataset name, got {type(value).__name__}")
        self.dataset_names = list(dataset_aus)
        self.dataset_aus = {d: [whole_number(a, f"each AU of dataset {d!r}", 0) for a in v]
                            for d, v in dataset_aus.items()}
        for d, v in self.dataset_aus.items():
            unknown = set(v) - set(self.aus)
            if unknown:
                raise ValueError(f"dataset {d!r} annotates AUs {sorted(unknown)} that are not in aus")
        if edges is not None and set(edges) - set(self.dataset_names):
            raise ValueError(f"edges names datasets {sorted(set(edges) - set(self.dataset_names))} that are not "
                             f"among the model's {self.dataset_names}")
        self.head = head
        self.num_levels = whole_number(num_levels, "num_levels", 2, MAX_LEVELS)
        self.image_size = image_size = whole_number(image_size, "image_size", 1, MAX_IMAGE_SIZE)
        self.num_features = num_features = whole_number(num_features, "num_features", 1, MAX_FEATURES)
        self.features = FeatureNet(image_size, num_features=num_features, padding=padding)
        unit = SoftmaxUnary if head == "softmax" else OrdinalUnary
        self.unary = nn.ModuleList([unit(num_features, num_levels) for _ in self.aus])
        if edges is None:
            edges = {d: list(itertools.combinations(sorted(v), 2)) for d, v in self.dataset_aus.items()}
        self._set_edges(edges if self.has_pairwise else {d: [] for d in self.dataset_names})

    # ---- structure -------------------------------------------------------------------------------
    @property
    def has_pairwise(self) -> bool:
        return self.head in ("loglinear", "copula")

    @property
    def ordinal(self) -> bool:
        return self.head != "softmax"

    def _set_edges(self, edges: dict, values: dict | None = None) -> None:
        """Install per-dataset edge sets {dataset: [(au_r, au_s), ...]} with fresh (or given) parameters."""
        index = {au: q for q, au in enumerate(self.aus)}
        active = []  # (dataset index, r, s)
        for d_idx, d in enumerate(self.dataset_names):
            for a, b in edges.get(d, []):
                if a not in index or b not in index or a == b:
                    raise ValueError(f"edge ({a}, {b}) of dataset {d!r}: both AUs must be distinct model AUs")
                r, s = sorted((index[a], index[b]))
                active.append((d_idx, r, s))
        active = sorted(set(active))
        pairs = sorted({(r, s) for _, r, s in active})
        column = {p: e for e, p in enumerate(pairs)}
        self.register_buffer("edges", torch.tensor(pairs, dtype=torch.int64).reshape(-1, 2))
        # (D, E) flat position of each active (dataset, edge) parameter, -1 where inactive
        slot = torch.full((len(self.dataset_names), len(pairs)), -1, dtype=torch.int64)
        for k, (d_idx, r, s) in enumerate(active):
            slot[d_idx, column[(r, s)]] = k
        self.register_buffer("edge_slot", slot)
        shape = () if self.head == "copula" else (self.num_levels, self.num_levels)
        params = []
        for d_idx, r, s in active:
            init = torch.zeros(shape)
            if values is not None:
                init = values[(d_idx, r, s)].detach().clone().reshape(shape)
            params.append(nn.Parameter(init))
        self.pairwise = nn.ParameterList(params)
        self._active = active

    def edge_list(self) -> dict:
        """{dataset name: [(au_r, au_s), ...]}: the current edge set of each dataset."""
        out = {d: [] for d in self.dataset_names}
        for d_idx, r, s in self._active:
            out[self.dataset_names[d_idx]].append((self.aus[r], self.aus[s]))
        return out

    def association(self) -> dict:
        """{dataset name: {(au_r, au_s): strength}}: theta for the copula head, the Frobenius norm of
        the centred interaction table for the log-linear head."""
        out = {d: {} for d in self.dataset_names}
        for (d_idx, r, s), p in zip(self._active, self.pairwise):
            value = p.item() if self.head == "copula" else torch.linalg.norm(p - p.mean()).item()
            out[self.dataset_names[d_idx]][(self.aus[r], self.aus[s])] = value
        return out

    def prune_edges(self, threshold: float) -> int:
        """Remove the (dataset, edge) pairs whose association magnitude is below `threshold` (the paper
        drops low-association edges). Returns the number removed. Recreate optimisers afterwards."""
        if not self.has_pairwise:
            return 0
        strength = self.association()
        keep, values, removed = {d: [] for d in self.dataset_names}, {}, 0
        for (d_idx, r, s), p in zip(self._active, self.pairwise):
            d = self.dataset_names[d_idx]
            if abs(strength[d][(self.aus[r], self.aus[s])]) < threshold:
                removed += 1
                continue
            keep[d].append((self.aus[r], self.aus[s]))
            values[(d_idx, r, s)] = p
        device = self.edges.device
        self._set_edges(keep, values)
        self.to(device)
        return removed

    # ---- parameter groups (IBB) ---------------------------------------------------------------------
    def cnn_parameters(self):
        return list(self.features.parameters())

    def unary_parameters(self, q: int | None = None):
        return list(self.unary.parameters()) if q is None else list(self.unary[q].parameters())

    def pairwise_parameters(self, k: int | None = None):
        return list(self.pairwise) if k is None else [self.pairwise[k]]

    def pairwise_slots(self):
        """[(dataset index, r, s)] for each pairwise parameter, in `pairwise_parameters()` order."""
        return list(self._active)

    # ---- forward -------------------------------------------------------------------------------------
    def forward(self, images: torch.Tensor, dataset_index: torch.Tensor | None = None) -> Outputs:
        features = self.features(images)
        return self.head_forward(features, dataset_index)

    def head_forward(self, features: torch.Tensor, dataset_index: torch.Tensor | None = None) -> Outputs:
        """The heads on precomputed features (IBB steps 2 and 3 reuse features of a frozen CNN)."""
        if dataset_index is None:
            dataset_index = torch.zeros(features.shape[0], dtype=torch.int64, device=features.device)
        out = Outputs(features=features, dataset_index=dataset_index)
        if self.head == "softmax":
            weight = torch.stack([u.weight for u in self.unary])   # (Q, L, F)
            bias = torch.stack([u.bias for u in self.unary])       # (Q, L)
            out.logits = torch.einsum("bf,qlf->bql", features, weight) + bias
        else:
            beta = torch.stack([u.beta for u in self.unary])       # (Q, F)
            psi = torch.stack([u.thresholds() for u in self.unary])  # (Q, L-1)
            sigma = torch.exp(torch.stack([u.log_sigma for u in self.unary]))  # (Q,)
            mu = features @ beta.t()                                 # (B, Q)
            out.z = (psi.unsqueeze(0) - mu.unsqueeze(-1)) / sigma[None, :, None]
        return out

    def unary_logprob(self, out: Outputs) -> torch.Tensor:
        """(B, Q, L) log P_q(y_q = l)."""
        if self.head == "softmax":
            return torch.log_softmax(out.logits, dim=-1)
        return ccnn_ext.ordinal_logprob(out.z)

    def _sample_pairwise(self, out: Outputs):
        """Per-sample pairwise parameters (B, E[, L, L]) and the (B, E) mask of edges active for the
        sample's dataset. The per-dataset table is spread to the samples by a one-hot matmul rather
        than by indexing, whose backward (an index-add with many repeats) is not bit-reproducible."""
        active = self.edge_slot >= 0                                   # (D, E)
        flat = torch.stack(list(self.pairwise))                        # (P[, L, L])
        table = torch.cat([flat, torch.zeros_like(flat[:1])])          # the last row is "inactive"
        per_dataset = table[torch.where(active, self.edge_slot, flat.shape[0])]  # (D, E[, L, L])
        D = per_dataset.shape[0]
        onehot = F.one_hot(out.dataset_index, D).to(per_dataset.dtype)  # (B, D)
        params = (onehot @ per_dataset.reshape(D, -1)).reshape(-1, *per_dataset.shape[1:])
        return params, active[out.dataset_index]

    def pairwise_loglik(self, out: Outputs, labels: torch.Tensor):
        """(B, E) log P_e(y_r, y_s) (0 where a label is missing or the edge is not in the sample's
        dataset) and the (B, E) boolean mask of the terms that count."""
        if not self.has_pairwise or self.edges.shape[0] == 0:
            empty = out.features.new_zeros(out.features.shape[0], 0)
            return empty, empty.bool()
        params, active = self._sample_pairwise(out)
        r, s = self.edges[:, 0], self.edges[:, 1]
        observed = active & (labels[:, r] >= 0) & (labels[:, s] >= 0)
        if self.head == "copula":
            loglik = ccnn_ext.pairwise_loglik(out.z, params.to(out.z.dtype), self.edges, labels)
        else:
            table = self._loglinear_logtable(out, params)            # (B, E, L, L)
            L = self.num_levels
            pair = labels[:, r].clamp_min(0) * L + labels[:, s].clamp_min(0)
            loglik = table.flatten(2).gather(2, pair.unsqueeze(-1)).squeeze(-1)
        return torch.where(observed, loglik, torch.zeros_like(loglik)), observed

    def _loglinear_logtable(self, out: Outputs, params: torch.Tensor) -> torch.Tensor:
        """log P_e(a, b) = log softmax_{a,b}[log P_r(a) + log P_s(b) + W_e(a, b)] (W = 0: independence)."""
        logp = self.unary_logprob(out)
        r, s = self.edges[:, 0], self.edges[:, 1]
        scores = logp[:, r, :, None] + logp[:, s, None, :] + params.to(logp.dtype)
        B, E, L, _ = scores.shape
        return torch.log_softmax(scores.reshape(B, E, L * L), dim=-1).reshape(B, E, L, L)

    def pairwise_logtable(self, out: Outputs):
        """(B, E, L, L) log P_e(a, b) for every edge and the (B, E) mask of edges active per sample."""
        B = out.features.shape[0]
        if not self.has_pairwise or self.edges.shape[0] == 0:
            L = self.num_levels
            return out.features.new_zeros(B, 0, L, L), out.features.new_zeros(B, 0).bool()
        params, active = self._sample_pairwise(out)
        if self.head == "copula":
            table = ccnn_ext.pairwise_logtable(out.z, params.to(out.z.dtype), self.edges)
        else:
            table = self._loglinear_logtable(out, params)
        return table, active

    # ---- initialisation and serialisation ----------------------------------------------------------
    @torch.no_grad()
    def init_from_labels(self, labels, smoothing: float = 1.0) -> None:
        """Start each AU's unary output at its (smoothed) training level frequencies: ordinal
        thresholds at the probit of the cumulative frequencies, softmax biases at the log frequencies."""
        labels = torch.as_tensor(labels)
        L = self.num_levels
        for q, unit in enumerate(self.unary):
            y = labels[:, q]
            y = y[y >= 0]
            counts = torch.bincount(y, minlength=L)[:L].double() + smoothing
            freq = counts / counts.sum()
            if self.head == "softmax":
                unit.bias.copy_(torch.log(freq).float())
            else:
                cum = torch.cumsum(freq, 0)[:-1].clamp(1e-4, 1 - 1e-4)
                psi = torch.special.ndtri(cum).float()
                unit.set_thresholds(psi)

    def config(self) -> dict:
        """Everything needed to rebuild the model (JSON-serialisable)."""
        return {
            "aus": self.aus, "head": self.head, "dataset_aus": self.dataset_aus,
            "image_size": self.image_size, "num_levels": self.num_levels,
            "num_features": self.num_features, "padding": self.features.padding,
            "edges": {d: [list(e) for e in v] for d, v in self.edge_list().items()},
        }

    @classmethod
    def from_config(cls, config: dict) -> "CCNN":
        edges = {d: [tuple(e) for e in v] for d, v in config["edges"].items()}
        return cls(config["aus"], head=config["head"], dataset_aus=config["dataset_aus"],
                   image_size=config["image_size"], num_levels=config["num_levels"],
                   num_features=config["num_features"], edges=edges,
                   padding=config.get("padding", "same"))

    def regularisation(self, lambdas) -> torch.Tensor:
        """sum_q lambda_q ||phi_q||^2 over the unary parameters (beta and thresholds for the ordinal
        head, weights for the softmax head; the scale sigma and the biases are not shrunk).
        `lambdas`: one float per AU."""
        if len(lambdas) != len(self.aus):
            raise ValueError(f"lambdas must hold one value per AU ({len(self.aus)}), got {len(lambdas)}")
        total = self.features.fc.bias.new_zeros(())
        for lam, unit in zip(lambdas, self.unary):
            if lam != 0.0:
                total = total + float(lam) * sum((p ** 2).sum() for p in unit.regularised())
        return total
