"""The composite (piecewise) negative log-likelihood of the paper (Eq. 10-12), with missing labels.

    loss = (1/B) * [ -sum_i sum_q log P_q(y_iq) - w sum_i sum_e log P_e(y_ir, y_is) ]
           + sum_q lambda_q ||phi_q||^2
with w = 1 (the paper) unless a weighted composite likelihood is asked for.

Terms whose label (either label, for an edge) is -1 are skipped; an edge counts only for samples of
a dataset that has it. Dividing the likelihood by the batch size B (the paper sums) keeps the
learning rate independent of the batch size; the regulariser is added once per batch.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .model import CCNN, Outputs


LOSS_TERM_NAMES = ("total", "unary", "pairwise", "regularisation")  # (LossTerms' fields, in order)


@dataclass
class LossTerms:
    total: torch.Tensor         # scalar, what is minimised
    unary: torch.Tensor         # scalar, -(1/B) sum of unary log-likelihoods
    pairwise: torch.Tensor      # scalar, -(1/B) sum of pairwise log-likelihoods
    regularisation: torch.Tensor  # scalar, sum_q lambda_q ||phi_q||^2

    def as_dict(self) -> dict:
        return {k: getattr(self, k).item() for k in LOSS_TERM_NAMES}


def check_labels(labels: torch.Tensor, num_aus: int, num_levels: int, values: bool = True) -> None:
    """ValueError unless `labels` is an int64 (B, num_aus) tensor of levels in -1 .. num_levels - 1
    (`values=False`: the dtype and shape only, which needs no read-back from the device)."""
    if labels.dtype != torch.int64 or labels.dim() != 2 or labels.shape[1] != num_aus:
        raise ValueError(f"labels must be an int64 (B, {num_aus}) tensor, got {labels.dtype} "
                         f"{tuple(labels.shape)}")
    if values and bool(((labels < -1) | (labels >= num_levels)).any()):
        raise ValueError(f"labels must lie in -1 (missing) .. {num_levels - 1}")


def require_labels(labels, what: str, advice: str) -> None:
    """ValueError unless `labels` (any array) hold at least one observed label (>= 0)."""
    if not (labels >= 0).any():
        raise ValueError(f"{what} hold no labels (every AU of every frame is -1, missing); {advice}")


def unary_loglik(model: CCNN, out: Outputs, labels: torch.Tensor) -> torch.Tensor:
    """(B, Q) log P_q(y_q), 0 where the label is missing."""
    logp = model.unary_logprob(out)
    observed = labels >= 0
    picked = logp.gather(-1, labels.clamp_min(0).unsqueeze(-1)).squeeze(-1)
    return torch.where(observed, picked, torch.zeros_like(picked))


def composite_nll(model: CCNN, out: Outputs, labels: torch.Tensor, lambdas=None,
                  pairwise_weight: float = 1.0, sample_weight: torch.Tensor | None = None,
                  labels_checked: bool = False) -> LossTerms:
    """The composite NLL of a batch. `lambdas`: one L2 weight per AU (None: no regulariser);
    `pairwise_weight` w weighs the pairwise terms in `total` (a weighted composite likelihood;
    w = 1 is Eq. 11), and `unary` and `pairwise` are reported unweighted; `sample_weight` (B,)
    weighs each sample's terms (importance weights of a re-balanced batch). `labels_checked`: the
    caller has checked the label values already (the trainer, once for its whole training set), so
    they are not checked again; on a GPU that check waits for the device at every call."""
    check_labels(labels, len(model.aus), model.num_levels, values=not labels_checked)
    batch = labels.shape[0]
    unary_terms = unary_loglik(model, out, labels).sum(1)
    pair_terms = model.pairwise_loglik(out, labels)[0].sum(1)
    if sample_weight is not None:
        unary_terms, pair_terms = unary_terms * sample_weight, pair_terms * sample_weight
    unary = -unary_terms.sum() / batch
    pairwise = -pair_terms.sum() / batch
    reg = model.regularisation(lambdas) if lambdas is not None else unary.new_zeros(())
    total = unary + (pairwise if pairwise_weight == 1.0 else pairwise_weight * pairwise) + reg
    return LossTerms(total=total, unary=unary, pairwise=pairwise, regularisation=reg)
