import math

import numpy as np
import pytest
import torch
from scipy.special import log_softmax, ndtr

from ccnn.losses import composite_nll
from ccnn.model import CCNN


def _frank(u, v, theta):
    if theta == 0.0:
        return u * v
    return -math.log1p(math.expm1(-theta * u) * math.expm1(-theta * v) / math.expm1(-theta)) / theta


def _randomised_model(head, seed=0):
    """A float64 model over two datasets with random (not initial) unary and pairwise parameters."""
    torch.manual_seed(seed)
    model = CCNN([1, 2, 4, 6], head=head, dataset_aus={"a": [1, 2, 4], "b": [2, 4, 6]},
                 image_size=8, num_features=5).double()
    with torch.no_grad():  # features are O(0.05): projections of O(10) give z of O(1)
        for unit in model.unary:
            if head == "softmax":
                unit.weight.normal_(0, 10)
                unit.bias.normal_(0, 0.5)
            else:
                unit.beta.normal_(0, 4)
                unit.psi_first.normal_(-1, 0.5)
                unit.psi_steps.normal_(0, 0.3)
                unit.log_sigma.normal_(0, 0.2)
        for p in model.pairwise_parameters():
            p.normal_(0, 3 if head == "copula" else 1)
    return model


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(5, 1, 8, 8, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 6, (5, 4), generator=g)
    dataset_index = torch.tensor([0, 0, 1, 1, 0])
    labels[dataset_index == 0, 3] = -1   # dataset a does not annotate AU 6
    labels[dataset_index == 1, 0] = -1   # dataset b does not annotate AU 1
    labels[1, 2] = -1                    # one more missing label
    return images, labels, dataset_index


def _hand_unary_logprob(model, f):
    """(B, Q, L) unary log-probabilities from the raw parameters, numpy float64."""
    B, Q, L = f.shape[0], len(model.aus), model.num_levels
    out = np.zeros((B, Q, L))
    for q, unit in enumerate(model.unary):
        if model.head == "softmax":
            logits = f @ unit.weight.detach().numpy().T + unit.bias.detach().numpy()
            out[:, q] = log_softmax(logits, axis=1)
            continue
        beta = unit.beta.detach().numpy()
        steps = np.log1p(np.exp(unit.psi_steps.detach().numpy())) + unit.MIN_STEP
        psi = unit.psi_first.item() + np.concatenate([[0.0], np.cumsum(steps)])
        sigma = math.exp(unit.log_sigma.item())
        for b in range(B):
            cdf = np.concatenate([[0.0], ndtr((psi - f[b] @ beta) / sigma), [1.0]])
            out[b, q] = np.log(np.diff(cdf))
    return out


def _hand_cdf(model, f, q, b):
    unit = model.unary[q]
    steps = np.log1p(np.exp(unit.psi_steps.detach().numpy())) + unit.MIN_STEP
    psi = unit.psi_first.item() + np.concatenate([[0.0], np.cumsum(steps)])
    z = (psi - f[b] @ unit.beta.detach().numpy()) / math.exp(unit.log_sigma.item())
    return np.concatenate([[0.0], ndtr(z), [1.0]])


def _hand_loss(model, images, labels, dataset_index, lambdas):
    f = model.features(images).detach().numpy()
    logp = _hand_unary_logprob(model, f)
    B = labels.shape[0]
    total = 0.0
    for b in range(B):
        for q in range(len(model.aus)):
            if labels[b, q] >= 0:
                total -= logp[b, q, labels[b, q]]
    index = {au: q for q, au in enumerate(model.aus)}
    association = model.association()
    params = dict(zip(model.pairwise_slots(), model.pairwise_parameters()))
    for b in range(B):
        d = model.dataset_names[int(dataset_index[b])]
        for (au_r, au_s) in association[d]:
            r, s = index[au_r], index[au_s]
            y_r, y_s = int(labels[b, r]), int(labels[b, s])
            if y_r < 0 or y_s < 0:
                continue
            param = params[(int(dataset_index[b]), r, s)].detach().numpy()
            if model.head == "copula":
                u, v = _hand_cdf(model, f, r, b), _hand_cdf(model, f, s, b)
                theta = float(param)
                p = (_frank(u[y_r + 1], v[y_s + 1], theta) - _frank(u[y_r], v[y_s + 1], theta)
                     - _frank(u[y_r + 1], v[y_s], theta) + _frank(u[y_r], v[y_s], theta))
                total -= math.log(p)
            else:
                scores = logp[b, r][:, None] + logp[b, s][None, :] + param
                total -= scores[y_r, y_s] - np.log(np.exp(scores).sum())
    reg = 0.0
    for lam, unit in zip(lambdas, model.unary):
        if model.head == "softmax":
            reg += lam * (unit.weight.detach().numpy() ** 2).sum()
        else:
            psi = unit.thresholds().detach().numpy()
            reg += lam * ((unit.beta.detach().numpy() ** 2).sum() + (psi ** 2).sum())
    return total / B + reg


@pytest.mark.parametrize("head", ["softmax", "ordinal", "loglinear", "copula"])
def test_composite_nll_matches_hand_computation(head):
    model = _randomised_model(head)
    images, labels, dataset_index = _batch()
    lambdas = [0.01, 0.0, 0.03, 0.002]
    loss = composite_nll(model, model(images, dataset_index), labels, lambdas)
    expected = _hand_loss(model, images, labels, dataset_index, lambdas)
    assert loss.total.item() == pytest.approx(expected, rel=1e-10)
    assert loss.total.item() == pytest.approx((loss.unary + loss.pairwise + loss.regularisation).item())


def test_sample_weights_and_pairwise_weight():
    model = _randomised_model("copula")
    images, labels, dataset_index = _batch()
    out = model(images, dataset_index)
    weights = torch.tensor([0.5, 2.0, 0.0, 1.0, 3.0], dtype=torch.float64)
    weighted = composite_nll(model, out, labels, sample_weight=weights, pairwise_weight=0.25)
    expected_unary = expected_pairwise = 0.0
    for b in range(5):
        single = composite_nll(model, model(images[b:b + 1], dataset_index[b:b + 1]), labels[b:b + 1])
        expected_unary += weights[b].item() * single.unary.item() / 5
        expected_pairwise += weights[b].item() * single.pairwise.item() / 5
    assert weighted.unary.item() == pytest.approx(expected_unary, rel=1e-10)
    assert weighted.pairwise.item() == pytest.approx(expected_pairwise, rel=1e-10)
    assert weighted.total.item() == pytest.approx(expected_unary + 0.25 * expected_pairwise, rel=1e-10)


def test_edges_only_count_for_their_dataset():
    model = _randomised_model("copula")
    images, labels, dataset_index = _batch()
    out = model(images, dataset_index)
    loglik, mask = model.pairwise_loglik(out, labels)
    edges = [tuple(model.aus[i] for i in e) for e in model.edges.tolist()]
    for b in range(labels.shape[0]):
        d = model.dataset_names[int(dataset_index[b])]
        for e, pair in enumerate(edges):
            if pair not in model.edge_list()[d]:
                assert not mask[b, e] and loglik[b, e] == 0


def test_missing_labels_carry_no_gradient():
    model = _randomised_model("copula")
    images, labels, dataset_index = _batch()
    images.requires_grad_(True)
    out = model(images, dataset_index)
    # sample 1 with all its labels missing contributes nothing
    labels[1] = -1
    composite_nll(model, out, labels).total.backward()
    assert torch.all(images.grad[1] == 0) and torch.any(images.grad[0] != 0)


def test_gradients_match_finite_differences():
    model = _randomised_model("copula", seed=2)
    images, labels, dataset_index = _batch(seed=2)
    features = model.features(images).detach()
    # keep to probabilities where the textbook formulas of the reference are accurate
    assert model.pairwise_loglik(model(images, dataset_index), labels)[0].min() > -20
    params = model.unary_parameters() + model.pairwise_parameters()

    def loss_of(*values):
        with torch.no_grad():
            for p, v in zip(params, values):
                p.copy_(v)
        return composite_nll(model, model.head_forward(features, dataset_index), labels, [0.01] * 4).total

    values = [p.detach().clone() for p in params]
    loss = loss_of(*values)
    grads = torch.autograd.grad(loss, params)
    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        direction = [torch.randn(p.shape, generator=g, dtype=p.dtype) for p in params]
        eps = 1e-6
        plus = loss_of(*[v + eps * d for v, d in zip(values, direction)])
        minus = loss_of(*[v - eps * d for v, d in zip(values, direction)])
        numeric = (plus - minus).item() / (2 * eps)
        analytic = sum(float((gr * d).sum()) for gr, d in zip(grads, direction))
        assert analytic == pytest.approx(numeric, rel=1e-5, abs=1e-7)


def test_bad_labels_are_rejected():
    model = _randomised_model("ordinal")
    images, labels, dataset_index = _batch()
    out = model(images, dataset_index)
    with pytest.raises(ValueError, match="labels"):
        composite_nll(model, out, labels.int())
    labels[0, 0] = 6
    with pytest.raises(ValueError, match="labels"):
        composite_nll(model, out, labels)


def test_labels_checked_skips_only_the_value_check():
    """The trainer checks its label values once and passes labels_checked=True (no read-back from the
    device per step): the loss is the same, and the dtype and shape are still checked."""
    model = _randomised_model("copula")
    images, labels, dataset_index = _batch()
    out = model(images, dataset_index)
    checked = composite_nll(model, out, labels, labels_checked=True)
    assert torch.equal(checked.total, composite_nll(model, out, labels).total)
    with pytest.raises(ValueError, match="labels must be an int64"):
        composite_nll(model, out, labels.int(), labels_checked=True)
