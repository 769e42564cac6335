import itertools

import numpy as np
import pytest
import torch

from ccnn.model import CCNN, FeatureNet
from ccnn.inference import DecodeOptions, crf_scores, decode
from train_reference import brute_force_map


def _model(head="copula", **kw):
    torch.manual_seed(0)
    kw.setdefault("dataset_aus", {"a": [1, 2, 4], "b": [2, 4, 6]})
    return CCNN([1, 2, 4, 6], head=head, image_size=16, num_features=8, **kw)


@pytest.mark.parametrize("size", [8, 16, 40, 48])
def test_feature_net_accepts_small_and_odd_sizes(size):
    net = FeatureNet(size, num_features=128)
    assert net(torch.zeros(3, 1, size, size)).shape == (3, 128)
    assert [m.out_channels for m in net.conv if isinstance(m, torch.nn.Conv2d)] == [32, 64, 128]
    assert all(m.kernel_size == (9, 9) for m in net.conv if isinstance(m, torch.nn.Conv2d))


@pytest.mark.parametrize("size, side", [(64, 1), (80, 3), (96, 5)])
def test_feature_net_valid_padding_matches_the_unpadded_arithmetic(size, side):
    net = FeatureNet(size, padding="valid")
    assert all(m.padding == (0, 0) for m in net.conv if isinstance(m, torch.nn.Conv2d))
    assert net.fc.in_features == 128 * side * side            # ((size - 8) / 2 - 8) / 2 ... three times
    x = torch.randn(2, 1, size, size)
    conv = torch.nn.functional.max_pool2d  # the same layers written out, unpadded
    h = x
    for m in (m for m in net.conv if isinstance(m, torch.nn.Conv2d)):
        h = conv(torch.relu(torch.nn.functional.conv2d(h, m.weight, m.bias)), 2)
    expected = torch.relu(net.fc(h.flatten(1)))
    torch.testing.assert_close(net(x), expected)


def test_feature_net_rejects_bad_input():
    with pytest.raises(ValueError, match="at least 64 with padding='valid'"):
        FeatureNet(63, padding="valid")
    with pytest.raises(ValueError, match="padding must be"):
        FeatureNet(96, padding="full")
    with pytest.raises(ValueError, match="image_size"):
        FeatureNet(4)
    with pytest.raises(ValueError, match="images must be"):
        FeatureNet(16)(torch.zeros(2, 3, 16, 16))


@pytest.mark.parametrize("head", ["softmax", "ordinal", "loglinear", "copula"])
def test_head_outputs(head):
    model = _model(head)
    out = model(torch.randn(5, 1, 16, 16), torch.tensor([0, 1, 0, 1, 1]))
    logp = model.unary_logprob(out)
    assert logp.shape == (5, 4, 6)
    assert torch.allclose(logp.exp().sum(-1), torch.ones(5, 4), atol=1e-5)
    table, active = model.pairwise_logtable(out)
    if model.has_pairwise:
        # dataset a: (1,2) (1,4) (2,4); dataset b: (2,4) (2,6) (4,6) -> 5 distinct edges
        assert table.shape == (5, 5, 6, 6)
        assert torch.allclose(table.exp().sum((-1, -2)), torch.ones(5, 5), atol=1e-5)
        assert active.sum(1).tolist() == [3, 3, 3, 3, 3]
        # the pairwise tables keep the unary marginals (copula: exactly; log-linear: at W = 0)
        r, s = model.edges[:, 0], model.edges[:, 1]
        assert torch.allclose(table.exp().sum(-1), logp[:, r].exp(), atol=1e-5)
        assert torch.allclose(table.exp().sum(-2), logp[:, s].exp(), atol=1e-5)
    else:
        assert table.shape == (5, 0, 6, 6)


def test_ordinal_thresholds_are_increasing_and_initialised_from_labels():
    model = _model("ordinal")
    rng = np.random.default_rng(0)
    labels = rng.choice(6, p=[0.6, 0.2, 0.1, 0.05, 0.03, 0.02], size=(4000, 4))
    labels[:10, 3] = -1
    model.init_from_labels(labels)
    with torch.no_grad():
        for unit in model.unary:
            unit.beta.zero_()
        probs = model.unary_logprob(model(torch.zeros(1, 1, 16, 16))).exp()[0]
    for q in range(4):
        y = labels[:, q][labels[:, q] >= 0]
        freq = (np.bincount(y, minlength=6) + 1) / (len(y) + 6)
        assert np.allclose(probs[q].numpy(), freq, atol=2e-3)
        assert torch.all(torch.diff(model.unary[q].thresholds()) > 0)


def test_softmax_init_from_labels():
    model = _model("softmax")
    labels = np.array([[0, 1, 2, 3]] * 9 + [[5, 5, 5, 5]])
    model.init_from_labels(labels)
    with torch.no_grad():
        for unit in model.unary:
            unit.weight.zero_()
        probs = model.unary_logprob(model(torch.zeros(1, 1, 16, 16))).exp()[0]
    assert probs[0].argmax() == 0 and probs[3].argmax() == 3


def test_parameter_groups_partition_the_parameters():
    model = _model("copula")
    groups = [model.cnn_parameters()] + [model.unary_parameters(q) for q in range(4)] + \
             [model.pairwise_parameters(k) for k in range(len(model.pairwise))]
    ids = [id(p) for g in groups for p in g]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))
    assert len(model.pairwise) == 6  # per (dataset, edge): the shared edge (2,4) has two thetas


def test_pruning_removes_weak_edges_and_keeps_the_rest():
    model = _model("copula")
    with torch.no_grad():
        for k, p in enumerate(model.pairwise):
            p.fill_([0.01, 2.0, -3.0, 0.02, -0.04, 1.5][k])
    before = model.association()
    assert model.prune_edges(0.05) == 3
    after = model.association()
    for d in after:
        assert after[d] == {e: v for e, v in before[d].items() if abs(v) >= 0.05}
    out = model(torch.randn(2, 1, 16, 16), torch.tensor([0, 1]))
    assert model.pairwise_logtable(out)[0].shape[1] == model.edges.shape[0]
    rebuilt = CCNN.from_config(model.config())
    rebuilt.load_state_dict(model.state_dict())
    assert rebuilt.association() == after


def test_config_round_trip():
    model = _model("loglinear")
    rebuilt = CCNN.from_config(model.config())
    assert CCNN.from_config(CCNN([1, 2], image_size=64, padding="valid").config()).features.padding == "valid"
    rebuilt.load_state_dict(model.state_dict())
    x, d = torch.randn(3, 1, 16, 16), torch.tensor([1, 0, 1])
    assert torch.equal(model.pairwise_logtable(model(x, d))[0], rebuilt.pairwise_logtable(rebuilt(x, d))[0])


def test_bad_model_arguments():
    with pytest.raises(ValueError, match="head"):
        CCNN([1, 2], head="crf")
    with pytest.raises(ValueError, match="not in aus"):
        CCNN([1, 2], dataset_aus={"a": [1, 3]})
    with pytest.raises(ValueError, match="lambdas"):
        _model().regularisation([0.1])


@pytest.mark.parametrize("arguments, expected", [
    (dict(num_levels=1), r"num_levels must be a whole number in \[2, 256\], got 1"),
    (dict(num_levels=2.5), r"num_levels .* got 2.5"),
    (dict(image_size=31.5), r"image_size must be a whole number in \[1, 1024\], got 31.5"),
    (dict(image_size=10 ** 6), r"image_size .* got 1000000"),  # (it tried to allocate a petabyte)
    (dict(num_features=-1), r"num_features must be a whole number in \[1, 65536\], got -1"),
    (dict(aus=[1.5, 2]), r"each AU in aus must be a whole number >= 0, got 1.5"),  # (was cut to 1)
    (dict(aus=[True, 2]), r"each AU in aus .* got True"),
    (dict(aus=None), r"aus must be a non-empty list"),
    (dict(aus="12"), r"aus must be a non-empty list"),
    (dict(dataset_aus=[1, 2]), r"dataset_aus must be a dict keyed by dataset name, got list"),
    (dict(edges={"other": [(1, 2)]}), r"edges names datasets \['other'\] that are not among the model's \['default'\]"),
])
def test_model_sizes_and_aus_are_checked_by_name(arguments, expected):
    """Each was a raw torch error, a silent cast or a silently ignored entry before it was checked."""
    with pytest.raises(ValueError, match=expected):
        CCNN(**{"aus": [1, 2], "image_size": 16, **arguments})
    assert CCNN(np.array([1, 2]), image_size=np.int64(16), num_features=4).aus == [1, 2]  # numpy ints pass


def _tree_model():
    torch.manual_seed(1)
    model = CCNN([1, 2, 4], head="copula", image_size=8, num_features=4,
                 edges={"default": [(1, 2), (2, 4)]}).double()
    with torch.no_grad():
        for unit in model.unary:
            unit.beta.normal_(0, 20)
        model.pairwise[0].fill_(4.0)
        model.pairwise[1].fill_(-2.5)
    return model


def test_pmi_decomposition_is_the_exact_joint_on_a_tree():
    model = _tree_model()
    out = model(torch.randn(2, 1, 8, 8, dtype=torch.float64))
    unary, pairwise, edges = crf_scores(model, out, DecodeOptions(decomposition="pmi"))
    for b in range(2):
        total = 0.0
        for y in itertools.product(range(6), repeat=3):
            score = sum(unary[b, q, y[q]] for q in range(3))
            score += sum(pairwise[b, e, y[r], y[s]] for e, (r, s) in enumerate(edges))
            total += np.exp(score)
        assert total == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("method", ["exact", "ad3"])
def test_decode_matches_brute_force(method):
    model = _tree_model()  # a tree: AD3's relaxation is tight
    out = model(torch.randn(4, 1, 8, 8, dtype=torch.float64))
    options = DecodeOptions(method=method, max_iter=1000)
    labels = decode(model, out, options)
    unary, pairwise, edges = crf_scores(model, out, options)
    for b in range(4):
        expected, _ = brute_force_map(unary[b], pairwise[b], edges)
        assert labels[b].tolist() == expected.tolist()


def test_a_loglinear_table_without_interaction_leaves_the_map_at_the_unary_argmax():
    """W_e(a, b) = row_a + col_b shifts the edge table's margins but couples nothing; the pmi pairwise
    term (against the table's own margins) is then 0 and MAP = per-AU argmax. Against the unary
    margins it would be row_a + col_b - log Z: a bias added once per incident edge (the old SCNN
    read-out, whose MAE was twice the other models')."""
    torch.manual_seed(2)
    aus = [1, 2, 4, 5, 6]
    model = CCNN(aus, head="loglinear", image_size=8, num_features=4).double()
    with torch.no_grad():
        for unit in model.unary:
            unit.beta.normal_(0, 3)
        for table in model.pairwise:
            table.copy_(torch.linspace(0, 3, 6)[:, None] + torch.linspace(0, 2, 6)[None, :])
    out = model(torch.randn(6, 1, 8, 8, dtype=torch.float64))
    argmax = decode(model, out, DecodeOptions(method="argmax"))
    _, pairwise, _ = crf_scores(model, out, DecodeOptions())
    assert np.abs(pairwise).max() < 1e-6  # 0 up to the rounding of the log-softmax
    assert np.array_equal(decode(model, out, DecodeOptions(method="exact")), argmax)


def test_argmax_and_expected_read_outs():
    model = _tree_model()
    out = model(torch.randn(3, 1, 8, 8, dtype=torch.float64))
    probs = model.unary_logprob(out).exp().detach().numpy()
    assert np.array_equal(decode(model, out, DecodeOptions(method="argmax")), probs.argmax(-1))
    assert np.allclose(decode(model, out, DecodeOptions(method="expected")), (probs * np.arange(6)).sum(-1))
    with pytest.raises(ValueError, match="decode method"):
        decode(model, out, DecodeOptions(method="viterbi"))


def test_decode_options_are_checked_when_made():
    """A bad method, decomposition or time limit is refused by DecodeOptions itself (the time limit
    used to reach the exact decoder only, the method only the first decode)."""
    for bad, match in ((dict(method="viterbi"), "decode method"), (dict(decomposition="npmi"), "decomposition"),
                       (dict(time_limit=0), "time_limit"), (dict(time_limit=float("nan")), "time_limit"),
                       (dict(time_limit=float("inf")), "time_limit"),
                       (dict(time_limit="1"), "time_limit")):
        with pytest.raises(ValueError, match=match):
            DecodeOptions(**bad)
    assert DecodeOptions(method="exact", time_limit=None).time_limit is None


@pytest.mark.parametrize("head", ["softmax", "ordinal", "loglinear", "copula"])
def test_gradients_are_bit_reproducible(head):
    from ccnn.losses import composite_nll
    model = CCNN(list(range(1, 13)), head=head, image_size=8, num_features=16,
                 dataset_aus={"a": list(range(1, 13)), "b": list(range(3, 9))})
    with torch.no_grad():
        for p in model.pairwise_parameters():
            p.normal_()
    g = torch.Generator().manual_seed(0)
    features = torch.randn(64, 16, generator=g).relu()
    labels = torch.randint(0, 6, (64, 12), generator=g)
    dataset_index = torch.randint(0, 2, (64,), generator=g)

    def grads():
        model.zero_grad()
        composite_nll(model, model.head_forward(features, dataset_index), labels).total.backward()
        return [p.grad.clone() for p in model.parameters() if p.grad is not None]

    reference = grads()
    for _ in range(10):
        assert all(torch.equal(a, b) for a, b in zip(reference, grads()))


def test_an_unknown_context_is_refused_even_where_no_dataset_needs_it():
    """`ccnn eval --context 0` on a model's own dataset was accepted without a word."""
    from ccnn.model_setup import dataset_remap
    model = CCNN([1, 2], dataset_aus={"a": [1, 2], "b": [1]}, image_size=8, num_features=4)
    assert dataset_remap(["b", "a"], model).tolist() == [1, 0]
    assert dataset_remap(["a", "new"], model, context="b").tolist() == [0, 1]
    with pytest.raises(ValueError, match=r"context '0' is not one of the model's datasets \['a', 'b'\]"):
        dataset_remap(["a"], model, context="0")
