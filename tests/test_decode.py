"""The MAP decoder (ccnn_ext.decode_ad3 / decode_exact / decode_exhaustive) against a brute-force
numpy oracle (tests/decode_problems.py) on random Gaussian and Frank-copula problems."""
import threading

import numpy as np
import pytest

import ccnn_ext
from decode_problems import KINDS, complete_edges, exhaustive_map, frank_copula, make_problems, score_labels
from scripts import interrupt_script


def tolerance(optimum):
    return 1e-9 * np.maximum(1.0, np.abs(optimum))


def random_tree(rng, num_nodes):
    """A random spanning tree with randomly oriented edges: (Q - 1, 2)."""
    edges = []
    for v in range(1, num_nodes):
        u = int(rng.integers(v))
        edges.append((u, v) if rng.random() < 0.5 else (v, u))
    return np.array(edges, dtype=np.int64)


def random_graph(rng, num_nodes):
    """About half of all pairs, randomly oriented and shuffled."""
    pairs = [(r, s) if rng.random() < 0.5 else (s, r)
             for r, s in complete_edges(num_nodes) if rng.random() < 0.5]
    rng.shuffle(pairs)
    return np.array(pairs, dtype=np.int64).reshape(-1, 2)


def check_consistent(result, unary, pairwise, edges):
    batch, num_nodes, _ = unary.shape
    assert result.labels.shape == (batch, num_nodes) and result.labels.dtype == np.int64
    for field in ("score", "bound", "status", "iterations"):
        assert getattr(result, field).shape == (batch,)
    assert result.status.dtype == np.int32 and result.iterations.dtype == np.int64
    np.testing.assert_allclose(score_labels(unary, pairwise, edges, result.labels), result.score,
                               rtol=0, atol=1e-9)


# ---- the test helpers themselves ----

def test_frank_tables_are_a_joint_distribution_with_the_ordinal_marginals():
    unary, pairwise, edges = make_problems("frank_mixed", 4, 4, 5, seed=3)
    joint = np.exp(pairwise)
    marginal = np.exp(unary)
    np.testing.assert_allclose(marginal.sum(-1), 1.0, atol=1e-12)
    np.testing.assert_allclose(joint.sum((-1, -2)), 1.0, atol=1e-9)
    np.testing.assert_allclose(joint.sum(-1), marginal[:, edges[:, 0]], atol=1e-9)
    np.testing.assert_allclose(joint.sum(-2), marginal[:, edges[:, 1]], atol=1e-9)
    # Frank copula: independence as theta -> 0, the Frechet bounds at large |theta|, C(u, 1) = u.
    u, v = 0.3, 0.6
    assert frank_copula(u, v, 1e-6) == pytest.approx(u * v, rel=1e-5)
    assert frank_copula(u, v, 30.0) == pytest.approx(min(u, v), abs=1e-2)
    assert frank_copula(u, v, -30.0) == pytest.approx(max(u + v - 1.0, 0.0), abs=1e-2)
    assert frank_copula(u, 1.0, 4.0) == pytest.approx(u, abs=1e-14)


# ---- exact solvers ----

@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("num_nodes,num_levels", [(2, 6), (4, 4), (5, 5), (6, 3)])
def test_exact_and_exhaustive_find_the_optimum(kind, num_nodes, num_levels):
    unary, pairwise, edges = make_problems(kind, 20, num_nodes, num_levels, seed=num_nodes * 10 + num_levels)
    _, optimum, _ = exhaustive_map(unary, pairwise, edges)
    tol = tolerance(optimum)
    exact = ccnn_ext.decode_exact(unary, pairwise, edges)
    check_consistent(exact, unary, pairwise, edges)
    assert (exact.status == ccnn_ext.decode.OPTIMAL).all()
    np.testing.assert_allclose(exact.score, optimum, rtol=0, atol=tol.max())
    assert (exact.bound >= optimum - tol).all() and (exact.bound - exact.score <= tol).all()
    brute = ccnn_ext.decode_exhaustive(unary, pairwise, edges)
    check_consistent(brute, unary, pairwise, edges)
    np.testing.assert_allclose(brute.score, optimum, rtol=0, atol=tol.max())


@pytest.mark.parametrize("kind", KINDS)
def test_exact_matches_exhaustive_at_eight_nodes(kind):
    unary, pairwise, edges = make_problems(kind, 8, 8, 6, seed=31)
    brute = ccnn_ext.decode_exhaustive(unary, pairwise, edges)
    exact = ccnn_ext.decode_exact(unary, pairwise, edges)
    assert exact.status_names == ["optimal"] * 8
    np.testing.assert_allclose(exact.score, brute.score, rtol=0, atol=tolerance(brute.score).max())
    check_consistent(exact, unary, pairwise, edges)


def test_exact_on_random_sparse_graphs():
    rng = np.random.default_rng(11)
    for trial in range(15):
        num_nodes = 3 + trial % 5
        edges = random_graph(rng, num_nodes)
        unary, pairwise, _ = make_problems(KINDS[trial % 3], 6, num_nodes, 4, seed=trial, edges=edges)
        _, optimum, _ = exhaustive_map(unary, pairwise, edges)
        exact = ccnn_ext.decode_exact(unary, pairwise, edges)
        np.testing.assert_allclose(exact.score, optimum, rtol=0, atol=tolerance(optimum).max())


def test_exact_node_limit_keeps_a_valid_bound():
    unary, pairwise, edges = make_problems("gaussian", 10, 7, 4, seed=5)
    _, optimum, _ = exhaustive_map(unary, pairwise, edges)
    limited = ccnn_ext.decode_exact(unary, pairwise, edges, max_nodes=5)
    assert (limited.bound >= optimum - tolerance(optimum)).all()
    assert (limited.score <= optimum + tolerance(optimum)).all()
    assert set(limited.status_names) <= {"optimal", "iteration_limit"}
    assert "iteration_limit" in limited.status_names


# ---- AD3 ----

@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("num_nodes,num_levels,batch", [(5, 5, 150), (6, 6, 25)])
def test_ad3_bounds_and_certificates_against_the_oracle(kind, num_nodes, num_levels, batch):
    unary, pairwise, edges = make_problems(kind, batch, num_nodes, num_levels, seed=7 + num_nodes)
    _, optimum, _ = exhaustive_map(unary, pairwise, edges)
    tol = tolerance(optimum)
    result = ccnn_ext.decode_ad3(unary, pairwise, edges, return_posteriors=True)
    check_consistent(result, unary, pairwise, edges)
    assert (result.bound >= optimum - tol).all()           # a valid upper bound
    assert (result.score <= optimum + tol).all()
    optimal = result.optimal
    assert (result.score[optimal] >= optimum[optimal] - tol[optimal]).all()  # "optimal" is true
    assert ((result.iterations >= 1) & (result.iterations <= 1000)).all()
    post = result.posteriors
    assert post.shape == unary.shape
    assert (post >= -1e-12).all() and np.allclose(post.sum(-1), 1.0, atol=1e-9)
    if kind != "gaussian":  # Frank-copula relaxations are mostly tight at this size
        assert optimal.mean() > 0.8


def test_ad3_fractional_and_iteration_limit_statuses():
    unary, pairwise, edges = make_problems("gaussian", 40, 6, 4, seed=9)
    _, optimum, _ = exhaustive_map(unary, pairwise, edges)
    result = ccnn_ext.decode_ad3(unary, pairwise, edges)
    names = set(result.status_names)
    assert "fractional" in names or "iteration_limit" in names  # frustrated problems exist here
    # Whatever the status, the rounding is a labelling no better than the optimum.
    assert (result.score <= optimum + tolerance(optimum)).all()
    capped = ccnn_ext.decode_ad3(unary, pairwise, edges, max_iter=2, gap_tol=0.0)
    assert (capped.iterations <= 2).all()
    assert (capped.bound >= optimum - tolerance(optimum)).all()
    assert "iteration_limit" in capped.status_names


def test_ad3_on_trees_is_integral_and_optimal():
    rng = np.random.default_rng(4)
    for trial in range(12):
        num_nodes = 2 + trial % 7
        edges = random_tree(rng, num_nodes)
        unary, pairwise, _ = make_problems(KINDS[trial % 3], 5, num_nodes, 4, seed=100 + trial, edges=edges)
        _, optimum, _ = exhaustive_map(unary, pairwise, edges)
        result = ccnn_ext.decode_ad3(unary, pairwise, edges)
        assert result.status_names == ["optimal"] * 5
        np.testing.assert_allclose(result.score, optimum, rtol=0, atol=tolerance(optimum).max())


# ---- batches ----

@pytest.mark.parametrize("decode", [ccnn_ext.decode_ad3, ccnn_ext.decode_exact])
def test_results_do_not_depend_on_the_number_of_threads(decode):
    unary, pairwise, edges = make_problems("frank_mixed", 57, 7, 6, seed=21)
    options = {"return_posteriors": True} if decode is ccnn_ext.decode_ad3 else {}
    results = [decode(unary, pairwise, edges, num_threads=t, **options) for t in (1, 2, 3, 0)]
    for other in results[1:]:
        for field in ("labels", "score", "bound", "status", "iterations", "posteriors"):
            a, b = getattr(results[0], field), getattr(other, field)
            assert (a is None and b is None) or np.array_equal(a, b), field


def test_shared_pairwise_equals_per_problem_tables():
    unary, pairwise, edges = make_problems("gaussian", 9, 5, 4, seed=2)
    shared = pairwise[0]
    a = ccnn_ext.decode_exact(unary, shared, edges)
    b = ccnn_ext.decode_exact(unary, np.broadcast_to(shared, pairwise.shape), edges)
    assert np.array_equal(a.labels, b.labels) and np.array_equal(a.score, b.score)
    c = ccnn_ext.decode_ad3(unary, shared, edges)
    d = ccnn_ext.decode_ad3(unary, np.broadcast_to(shared, pairwise.shape), edges)
    assert np.array_equal(c.labels, d.labels) and np.array_equal(c.bound, d.bound)


def test_concurrent_python_threads_get_the_same_answers():
    unary, pairwise, edges = make_problems("frank_pos", 40, 8, 6, seed=8)
    expected = ccnn_ext.decode_ad3(unary, pairwise, edges, num_threads=1)
    results = [None] * 4

    def work(slot):
        results[slot] = ccnn_ext.decode_ad3(unary, pairwise, edges, num_threads=1)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in results:
        assert np.array_equal(r.labels, expected.labels) and np.array_equal(r.bound, expected.bound)


def test_empty_batch():
    edges = complete_edges(3)
    result = ccnn_ext.decode_ad3(np.zeros((0, 3, 4)), np.zeros((len(edges), 4, 4)), edges)
    assert result.labels.shape == (0, 3) and result.score.shape == (0,)


# ---- inputs: numpy, torch, errors ----

def test_torch_and_numpy_inputs_agree():
    torch = pytest.importorskip("torch")
    unary, pairwise, edges = make_problems("frank_pos", 6, 5, 6, seed=1)
    expected = ccnn_ext.decode_exact(unary, pairwise, edges)
    got = ccnn_ext.decode_exact(torch.from_numpy(unary), torch.from_numpy(pairwise), torch.from_numpy(edges))
    assert np.array_equal(got.labels, expected.labels)
    np.testing.assert_allclose(got.score, expected.score, rtol=0, atol=1e-12)
    # float32 tensors and int32 edges are converted; a non-contiguous view works too.
    t_unary = torch.from_numpy(unary).float()
    t_pairwise = torch.from_numpy(pairwise).float().transpose(2, 3).contiguous().transpose(2, 3)
    got32 = ccnn_ext.decode_ad3(t_unary, t_pairwise, torch.from_numpy(edges).int())
    ref32 = ccnn_ext.decode_ad3(unary.astype(np.float32), pairwise.astype(np.float32), edges.astype(np.int32))
    assert np.array_equal(got32.labels, ref32.labels)
    got16 = ccnn_ext.decode_exact(torch.from_numpy(unary).bfloat16(), torch.from_numpy(pairwise).bfloat16(),
                                  torch.from_numpy(edges))
    ref16 = ccnn_ext.decode_exact(torch.from_numpy(unary).bfloat16().double().numpy(),
                                  torch.from_numpy(pairwise).bfloat16().double().numpy(), edges)
    assert np.array_equal(got16.labels, ref16.labels)
    with pytest.raises(TypeError, match="edges: expected integers"):
        ccnn_ext.decode_exact(unary, pairwise, torch.from_numpy(edges).float())
    if torch.cuda.is_available():
        on_gpu = ccnn_ext.decode_exact(torch.from_numpy(unary).cuda(), torch.from_numpy(pairwise).cuda(),
                                       torch.from_numpy(edges).cuda())
        assert np.array_equal(on_gpu.labels, expected.labels)


def test_lists_are_accepted():
    unary, pairwise, edges = make_problems("gaussian", 2, 3, 3, seed=4)
    got = ccnn_ext.decode_exact(unary.tolist(), pairwise.tolist(), edges.tolist())
    assert np.array_equal(got.labels, ccnn_ext.decode_exact(unary, pairwise, edges).labels)


def bad_input_cases():
    unary, pairwise, edges = make_problems("gaussian", 3, 4, 3, seed=0)

    def with_value(array, index, value):
        array = array.copy()
        array[index] = value
        return array

    return [
        ("nan unary", (with_value(unary, (1, 2, 0), np.nan), pairwise, edges), {}, ValueError, "unary.*NaN"),
        ("inf pairwise", (unary, with_value(pairwise, (2, 1, 0, 0), np.inf), edges), {}, ValueError,
         "pairwise.*problem 2.*infinite"),
        ("-inf shared pairwise", (unary, with_value(pairwise[0], (0, 1, 1), -np.inf), edges), {}, ValueError,
         "pairwise.*infinite"),
        ("unary rank", (unary[0], pairwise, edges), {}, ValueError, r"unary: expected shape \(B, Q, L\)"),
        ("pairwise shape", (unary, pairwise[:, :, :2], edges), {}, ValueError, "pairwise: expected shape"),
        ("pairwise edges", (unary, pairwise[:, 1:], edges), {}, ValueError, "pairwise: expected shape"),
        ("edges shape", (unary, pairwise, edges[:, :1]), {}, ValueError, r"edges: expected shape \(E, 2\)"),
        ("edge out of range", (unary, pairwise, with_value(edges, (3, 1), 4)), {}, ValueError,
         r"edges: edge 3 .* outside \[0, 4\)"),
        ("negative edge", (unary, pairwise, with_value(edges, (0, 0), -1)), {}, ValueError, "edges: .*outside"),
        ("self-loop", (unary, pairwise, with_value(edges, (2, 1), edges[2, 0])), {}, ValueError, "self-loop"),
        ("duplicate edge", (unary, pairwise, with_value(edges, 1, edges[0])), {}, ValueError, "more than once"),
        ("reversed duplicate", (unary, pairwise, with_value(edges, 1, edges[0, ::-1])), {}, ValueError,
         "more than once"),
        ("one state", (unary[:, :, :1], pairwise[:, :, :1, :1], edges), {}, ValueError, "at least 2 states"),
        ("float edges", (unary, pairwise, edges.astype(float)), {}, TypeError, "edges: expected integers"),
        ("complex unary", (unary.astype(complex), pairwise, edges), {}, TypeError, "unary: expected real"),
        ("string pairwise", (unary, pairwise.astype(str), edges), {}, TypeError, "pairwise: expected real"),
        ("threads", (unary, pairwise, edges), {"num_threads": -1}, ValueError, "num_threads"),
        ("max_iter", (unary, pairwise, edges), {"max_iter": 0}, ValueError, "max_iter"),
        ("eta", (unary, pairwise, edges), {"eta": 0.0}, ValueError, "eta"),
        ("tol", (unary, pairwise, edges), {"tol": float("nan")}, ValueError, "tol"),
        ("gap_tol", (unary, pairwise, edges), {"gap_tol": -1.0}, ValueError, "gap_tol"),
    ]


@pytest.mark.parametrize("name,args,kwargs,error,match", bad_input_cases(), ids=[c[0] for c in bad_input_cases()])
def test_bad_input_is_rejected_with_a_clear_message(name, args, kwargs, error, match):
    decoders = [ccnn_ext.decode_ad3] if kwargs else [ccnn_ext.decode_ad3, ccnn_ext.decode_exact]
    for decode in decoders:
        with pytest.raises(error, match=match):
            decode(*args, **kwargs)


def test_exact_rejects_a_bad_node_limit():
    unary, pairwise, edges = make_problems("gaussian", 1, 3, 3, seed=0)
    with pytest.raises(ValueError, match="max_nodes"):
        ccnn_ext.decode_exact(unary, pairwise, edges, max_nodes=-1)


def test_exhaustive_refuses_huge_graphs():
    unary, pairwise, edges = make_problems("gaussian", 1, 13, 6, seed=0)
    with pytest.raises(ValueError, match="2\\^30"):
        ccnn_ext.decode_exhaustive(unary, pairwise, edges)


def chain_optimum(unary, pairwise):
    """Max-sum dynamic programming along a chain 0 - 1 - ... - (Q-1): the oracle for long chains."""
    best = unary[:, 0].copy()  # (B, L): best score of the prefix ending in each state
    for e in range(pairwise.shape[1]):
        best = (best[:, :, None] + pairwise[:, e]).max(axis=1) + unary[:, e + 1]
    return best.max(axis=1)


def test_long_chains_exact_and_ad3_match_dynamic_programming():
    num_nodes = 40
    edges = np.array([(i, i + 1) for i in range(num_nodes - 1)], dtype=np.int64)
    for kind in KINDS:
        unary, pairwise, _ = make_problems(kind, 10, num_nodes, 6, seed=3, edges=edges)
        optimum = chain_optimum(unary, pairwise)
        exact = ccnn_ext.decode_exact(unary, pairwise, edges)
        assert exact.status_names == ["optimal"] * 10
        np.testing.assert_allclose(exact.score, optimum, rtol=0, atol=tolerance(optimum).max())
        relaxed = ccnn_ext.decode_ad3(unary, pairwise, edges)  # a tree: the relaxation is tight
        assert relaxed.status_names == ["optimal"] * 10
        np.testing.assert_allclose(relaxed.score, optimum, rtol=0, atol=tolerance(optimum).max())


def test_graph_without_edges():
    unary = np.array([[[0.1, 0.5, 0.2], [1.0, -1.0, 0.0]]])
    for decode in (ccnn_ext.decode_ad3, ccnn_ext.decode_exact, ccnn_ext.decode_exhaustive):
        result = decode(unary, np.zeros((0, 3, 3)), [])
        assert result.labels.tolist() == [[1, 0]] and result.score[0] == pytest.approx(1.5)
        assert result.status_names == ["optimal"]


# ---- reliability: stopping a decode, limits, overflow, option ranges (issue 14) ----

def hard_problem(num_nodes=40, batch=1, seed=0):
    """Fully connected Gaussian problems that branch-and-bound cannot finish for minutes."""
    rng = np.random.default_rng(seed)
    edges = complete_edges(num_nodes)
    return rng.normal(size=(batch, num_nodes, 6)), rng.normal(size=(batch, len(edges), 6, 6)), edges


CTRL_C_CHILD = """
import signal; signal.signal(signal.SIGINT, signal.default_int_handler)  # not an inherited SIG_IGN
import sys, time
import numpy as np
import ccnn_ext
rng = np.random.default_rng(0)
Q, threads = 40, int(sys.argv[1])
edges = np.array([(r, s) for r in range(Q) for s in range(r + 1, Q)])
unary, pairwise = rng.normal(size=(threads, Q, 6)), rng.normal(size=(threads, len(edges), 6, 6))
print("ready", flush=True)
try:
    ccnn_ext.decode_exact(unary, pairwise, edges, num_threads=threads, time_limit=None)
except KeyboardInterrupt:
    print("interrupted", flush=True)
    raise
print("finished", flush=True)
"""


@pytest.mark.parametrize("threads", [1, 2])
def test_ctrl_c_stops_a_long_exact_decode(tmp_path, threads):
    script = tmp_path / "child.py"
    script.write_text(CTRL_C_CHILD)
    out, err, returncode, elapsed = interrupt_script(script, [threads], wait=1.0, timeout=10)
    assert "interrupted" in out and "KeyboardInterrupt" in err, (out, err)
    assert returncode != 0
    assert elapsed < 2.0, f"exited {elapsed:.2f} s after SIGINT"


def test_time_limit_stops_the_search_with_a_status():
    import time

    unary, pairwise, edges = hard_problem(batch=2)
    start = time.monotonic()
    result = ccnn_ext.decode_exact(unary, pairwise, edges, time_limit=0.3, num_threads=1)
    elapsed = time.monotonic() - start
    assert 0.6 <= elapsed < 0.6 + 1.0  # 0.3 s per problem, one thread
    assert result.status_names == ["time_limit"] * 2
    assert result.status.tolist() == [ccnn_ext.decode.TIME_LIMIT] * 2 and not result.optimal.any()
    assert (result.bound > result.score).all()
    check_consistent(result, unary, pairwise, edges)
    # Easy problems are not affected; max_nodes still reports its own status.
    unary, pairwise, edges = make_problems("frank_mixed", 20, 8, 6, seed=1)
    assert ccnn_ext.decode_exact(unary, pairwise, edges, time_limit=0.5).status_names == ["optimal"] * 20
    unary, pairwise, edges = hard_problem()
    capped = ccnn_ext.decode_exact(unary, pairwise, edges, max_nodes=3000, time_limit=60)
    assert capped.status_names == ["iteration_limit"] and capped.iterations[0] == 3000


def test_decode_exact_is_bounded_by_default():
    import inspect

    assert 0 < ccnn_ext.DEFAULT_EXACT_TIME_LIMIT <= 60
    for function in (ccnn_ext.decode_exact, ccnn_ext.FactorGraph.solve_exact):
        parameters = inspect.signature(function).parameters
        assert parameters["time_limit"].default == ccnn_ext.DEFAULT_EXACT_TIME_LIMIT
        assert parameters["max_nodes"].default is None


@pytest.mark.parametrize("value", [-1, 0, float("nan"), "1", True, 1e10])
def test_bad_time_limit_is_rejected(value):
    unary, pairwise, edges = make_problems("gaussian", 1, 3, 3, seed=0)
    with pytest.raises(ValueError, match=r"time_limit: expected None \(no limit\) or a number in \(0, 1e\+09\]"):
        ccnn_ext.decode_exact(unary, pairwise, edges, time_limit=value)


def test_unlimited_time_and_nodes():
    unary, pairwise, edges = make_problems("gaussian", 5, 6, 4, seed=2)
    _, optimum, _ = exhaustive_map(unary, pairwise, edges)
    for options in ({"time_limit": None, "max_nodes": None}, {"time_limit": float("inf"), "max_nodes": 0}):
        result = ccnn_ext.decode_exact(unary, pairwise, edges, **options)
        assert result.status_names == ["optimal"] * 5
        np.testing.assert_allclose(result.score, optimum, rtol=0, atol=tolerance(optimum).max())


@pytest.mark.parametrize("decode", [ccnn_ext.decode_ad3, ccnn_ext.decode_exact, ccnn_ext.decode_exhaustive])
def test_scores_that_could_overflow_are_rejected(decode):
    edges = complete_edges(3)
    zeros = np.zeros((1, 3, 2))
    for unary, pairwise in ((np.full((1, 3, 2), 1.7e308), np.zeros((3, 2, 2))),
                            (zeros, np.full((3, 2, 2), -1.7e308)),
                            (zeros, np.full((1, 3, 2, 2), 4e299))):
        with pytest.raises(ValueError, match="too large.*rescale the scores"):
            decode(unary, pairwise, edges)
    # Just inside the limit: finite, certified.
    unary = np.array([[[3e299, -3e299]] * 3])
    result = decode(unary, np.zeros((3, 2, 2)), edges)
    assert np.isfinite(result.score).all() and np.isfinite(result.bound).all()
    assert result.score[0] == pytest.approx(9e299) and result.status_names == ["optimal"]
    # Random problems at the limit: finite scores and bounds; exact search still certifies.
    rng = np.random.default_rng(1)
    edges = complete_edges(5)
    scale = 1e300 / (5 + len(edges))
    unary = rng.uniform(-1, 1, size=(10, 5, 4)) * scale
    pairwise = rng.uniform(-1, 1, size=(10, len(edges), 4, 4)) * scale
    result = decode(unary, pairwise, edges)
    assert np.isfinite(result.score).all() and np.isfinite(result.bound).all()
    if decode is not ccnn_ext.decode_ad3:
        assert result.status_names == ["optimal"] * 10
        np.testing.assert_allclose(result.score, ccnn_ext.decode_exhaustive(unary, pairwise, edges).score,
                                   rtol=1e-12)


@pytest.mark.parametrize("option,value,decode", [
    ("max_iter", 2**31, ccnn_ext.decode_ad3),
    ("num_threads", 2**31, ccnn_ext.decode_ad3),
    ("num_threads", 2**40, ccnn_ext.decode_exact),
    ("max_nodes", 2**63, ccnn_ext.decode_exact),
    ("max_nodes", -1, ccnn_ext.decode_exact),
])
def test_out_of_range_int_options_name_the_option_and_range(option, value, decode):
    unary, pairwise, edges = make_problems("gaussian", 1, 3, 3, seed=0)
    with pytest.raises(ValueError, match=rf"{option}: expected an int in \[\d+, \d+\]") as error:
        decode(unary, pairwise, edges, **{option: value})
    assert "incompatible function arguments" not in str(error.value)


def test_binding_validates_int_options_itself():
    from ccnn_ext import _decoder

    unary, pairwise, edges = make_problems("gaussian", 1, 3, 3, seed=0)
    args = ["ad3", np.full(3, 3, dtype=np.int64), edges, unary.reshape(1, -1), pairwise.reshape(-1)]
    for index, name, value in ((0, "max_iterations", 2**31), (0, "max_iterations", 2**70),
                               (1, "max_nodes", 2**63), (2, "num_threads", -1), (2, "num_threads", 1.5)):
        ints = [1000, 0, 0]
        ints[index] = value
        with pytest.raises(ValueError, match=rf"{name}: expected an int in \["):
            _decoder.solve(*args, ints[0], 0.1, True, 1e-6, 1e-9, 1e-9, ints[1], ints[2], False)
    # numpy integers are ints
    _decoder.solve(*args, np.int64(10), 0.1, True, 1e-6, 1e-9, 1e-9, np.int32(0), np.uint8(1), False)


@pytest.mark.parametrize("decode", [ccnn_ext.decode_ad3, ccnn_ext.decode_exact, ccnn_ext.decode_exhaustive])
def test_graph_without_variables(decode):
    result = decode(np.zeros((2, 0, 3)), np.zeros((0, 3, 3)), [])
    assert result.labels.shape == (2, 0)
    assert result.score.tolist() == [0.0, 0.0] and result.status_names == ["optimal"] * 2
