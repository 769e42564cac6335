"""Turning model outputs into AU intensities: MAP decoding of the CRF or per-AU read-outs, batch by
batch (`decode`), over a dataset (`run_inference`) or over pre-processed faces (`infer_faces`).

Methods:
    "ad3"       approximate MAP of the loopy CRF with `ccnn_ext.decode_ad3` (the paper's decoder)
    "exact"     certified exact MAP with `ccnn_ext.decode_exact` (small graphs)
    "argmax"    independent per-AU argmax of the unary marginals (the OCNN/CNN read-out)
    "expected"  expected intensity sum_l l P_q(l) under the unary marginals (a real number)

Decoded score (the decomposition, `DecodeOptions.decomposition`):
    "pmi"   S(y) = w_u sum_q log P_q(y_q) + w_p sum_e [log P_e(y_r, y_s) - log P_e(y_r) - log P_e(y_s)]
            with P_e(.) the margins of the edge's table: the pairwise term is the log copula (or
            log-linear) density ratio, so S is the exact log joint of a copula model on a tree and the
            unaries are not counted once per incident edge. Default.
    "joint" S(y) = w_u sum_q log P_q(y_q) + w_p sum_e log P_e(y_r, y_s)   (docs/design.md, section 3.4)
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset
from tqdm.auto import tqdm

import ccnn_ext

from . import distributed
from .data.torch_data import FaceDataset
from .losses import composite_nll
from .model import CCNN, Outputs
from .model_setup import dataset_remap

METHODS = ("ad3", "exact", "argmax", "expected")
DECOMPOSITIONS = ("pmi", "joint")
FRAME_TIME_LIMIT = 1.0  # default bound of the exact search, seconds per frame (CCNN frames take < 1 ms)


@dataclass
class DecodeOptions:
    method: str = "auto"          # one of METHODS, or "auto": "ad3" with pairwise terms, else "argmax"
    decomposition: str = "pmi"
    unary_weight: float = 1.0
    pairwise_weight: float = 1.0
    max_iter: int = 100           # AD3 iterations (the paper ran 100)
    eta: float = 0.1
    num_threads: int = 0
    time_limit: float | None = FRAME_TIME_LIMIT  # "exact": seconds per frame (None: no limit)
    # the decoder's status of every frame decoded with these options ("optimal", "time_limit", ...)
    status_counts: Counter = field(default_factory=Counter, repr=False, compare=False)

    def __post_init__(self):
        if self.method != "auto" and self.method not in METHODS:
            raise ValueError(f"decode method must be one of {METHODS} or 'auto', got {self.method!r}")
        if self.decomposition not in DECOMPOSITIONS:
            raise ValueError(f"decomposition must be one of {DECOMPOSITIONS}, got {self.decomposition!r}")
        limit = self.time_limit
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, float))
                                  or not 0 < limit <= 1e9):  # (the decoder's range)
            raise ValueError(f"time_limit must be a number in (0, 1e9] (seconds per frame) or None, got {limit!r}")

    def resolve(self, model: CCNN) -> str:
        if self.method == "auto":
            return "ad3" if model.has_pairwise and model.edges.shape[0] > 0 else "argmax"
        return self.method


def crf_scores(model: CCNN, out: Outputs, options: DecodeOptions):
    """The MAP problem of a batch: unary (B, Q, L) and pairwise (B, E, L, L) float64 score tables and
    the (E, 2) edges, all numpy; edges not in a sample's dataset get an all-zero table."""
    logp = model.unary_logprob(out).double()
    table, active = model.pairwise_logtable(out)
    table = table.double()
    if options.decomposition == "pmi" and table.shape[1] > 0:
        table = pointwise_mutual_information(table)
    table = torch.where(active[:, :, None, None], table, torch.zeros_like(table))
    unary = options.unary_weight * logp
    pairwise = options.pairwise_weight * table
    return (unary.detach().cpu().numpy(), pairwise.detach().cpu().numpy(),
            model.edges.detach().cpu().numpy())


def pointwise_mutual_information(table: torch.Tensor) -> torch.Tensor:
    """log P_e(a, b) - log P_e(a) - log P_e(b) of log tables (..., L, L), with the table's own margins.
    For the copula they are the unary marginals; the log-linear table's margins differ from them,
    and subtracting the unaries instead would leave the table's margin correction in the pairwise
    term, counted once per incident edge when decoding. Impossible levels (margin 0) give 0."""
    rows = torch.logsumexp(table, dim=-1, keepdim=True)
    cols = torch.logsumexp(table, dim=-2, keepdim=True)
    pmi = table - rows - cols
    return torch.where(torch.isfinite(rows) & torch.isfinite(cols), pmi, torch.zeros_like(pmi))


@torch.no_grad()
def decode(model: CCNN, out: Outputs, options: DecodeOptions | None = None) -> np.ndarray:
    """(B, Q) predicted intensities of a batch of model outputs (float64; integers except 'expected')."""
    return decoder_for(model, out, options)()


@torch.no_grad()
def decoder_for(model: CCNN, out: Outputs, options: DecodeOptions | None = None) -> Callable[[], np.ndarray]:
    """`decode` in two halves: what needs the model and its outputs runs now (the read-outs, or the
    CRF's score tables as numpy arrays), and the returned function solves the MAP problems without
    torch, with the GIL released, so that it can run in another thread while the network goes on."""
    options = options or DecodeOptions()
    method = options.resolve(model)
    logp = model.unary_logprob(out)
    if method == "expected":
        levels = torch.arange(model.num_levels, dtype=logp.dtype, device=logp.device)
        values = (logp.exp() * levels).sum(-1).double().cpu().numpy()
        return lambda: values
    if method == "argmax" or not model.has_pairwise or model.edges.shape[0] == 0:
        values = logp.argmax(-1).double().cpu().numpy()
        return lambda: values
    unary, pairwise, edges = crf_scores(model, out, options)

    def solve() -> np.ndarray:
        if method == "ad3":
            result = ccnn_ext.decode_ad3(unary, pairwise, edges, max_iter=options.max_iter, eta=options.eta,
                                         num_threads=options.num_threads)
        else:
            result = ccnn_ext.decode_exact(unary, pairwise, edges, num_threads=options.num_threads,
                                           time_limit=options.time_limit)
        options.status_counts.update(result.status_names)
        return np.asarray(result.labels, dtype=np.float64)
    return solve


def uncertified_report(options: DecodeOptions) -> str:
    """'' when every frame decoded exactly with `options` is certified optimal; otherwise how many are
    not, by decoder status, and what to do."""
    counts = options.status_counts
    bad = {name: n for name, n in sorted(counts.items()) if name != "optimal"}
    if options.method != "exact" or not bad:
        return ""
    limit = "none" if options.time_limit is None else f"{options.time_limit:g} s"
    return (f"exact decoding: {sum(bad.values())} of {sum(counts.values())} frames not certified optimal "
            f"({', '.join(f'{k}: {v}' for k, v in bad.items())}; time limit {limit} per frame); they hold "
            f"the best labelling found, raise --time-limit (or 'none') to certify them")


@torch.no_grad()
def run_inference(model: CCNN, dataset, remap: torch.Tensor, options: DecodeOptions | None = None,
                  batch_size: int = 256, device=None, progress: bool = False,
                  desc: str = "predict", split_ranks: bool = False):
    """Predictions of `model` over a FaceDataset-like dataset, in order.

    Returns (predictions (N, Q) float64, labels (N, Q) int64, nll) where nll is the mean composite
    NLL per sample (without the regulariser). `split_ranks`: every process of a data-parallel run
    calls this, runs the network and the decoder on its part of the dataset, and all get the whole
    result (the rows gathered in order), so metrics are computed over the whole set."""
    device = device or next(model.parameters()).device
    model.eval()
    start, stop = distributed.shard(len(dataset)) if split_ranks else (0, len(dataset))
    part = dataset if (start, stop) == (0, len(dataset)) else Subset(dataset, range(start, stop))
    loader = DataLoader(part, batch_size=batch_size, shuffle=False)
    preds, labels, nll, count = [], [], 0.0, 0
    for images, y, d in tqdm(loader, desc=desc, leave=False, disable=not progress):
        images, y = images.to(device), y.to(device)
        d = remap[d].to(device)
        out = model(images, d)
        nll += composite_nll(model, out, y).total.item() * y.shape[0]
        count += y.shape[0]
        preds.append(decode(model, out, options))
        labels.append(y.cpu().numpy())
    Q = len(model.aus)
    preds = np.concatenate(preds) if preds else np.zeros((0, Q))
    labels = np.concatenate(labels) if labels else np.zeros((0, Q), dtype=np.int64)
    if split_ranks:
        preds, labels = distributed.gather_rows(preds), distributed.gather_rows(labels)
        nll, count = distributed.reduce_sum([nll, count])
    return preds, labels, nll / count if count else math.nan


@torch.no_grad()
def forward_faces(model: CCNN, faces, crop: float = 0.85, options: DecodeOptions | None = None,
                  device=None, context: str | None = None) -> Callable[[], np.ndarray]:
    """The network pass over FaceArrays (one batch, at their centre crop) now, and their decoding as
    the function `decoder_for` returns: infer_faces's predictions, in two steps."""
    device = device or next(model.parameters()).device
    model.eval()
    dataset = FaceDataset(faces, aus=model.aus, train=False, crop=crop)
    remap = dataset_remap(dataset.dataset_names, model, context=context)
    images, _, d = next(iter(DataLoader(dataset, batch_size=len(dataset), shuffle=False)))
    return decoder_for(model, model(images.to(device), remap[d].to(device)), options)


def infer_faces(model: CCNN, faces, crop: float = 0.85, options: DecodeOptions | None = None,
                batch_size: int = 256, device=None, context: str | None = None, progress: bool = False,
                split_ranks: bool = False):
    """run_inference over FaceArrays (one or a list) at their centre crop; a dataset the model was not
    trained on uses the pairwise terms of the model's dataset `context` (see dataset_remap)."""
    dataset = FaceDataset(faces, aus=model.aus, train=False, crop=crop)
    remap = dataset_remap(dataset.dataset_names, model, context=context)
    return run_inference(model, dataset, remap, options, batch_size, device, progress=progress,
                         split_ranks=split_ranks)
