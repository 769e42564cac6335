"""ccnn_decoder.ad3.simple_inference: ``simple_grid`` and ``general_graph`` (the reference's
``ad3.simple_inference``). They solve the graph :class:`ccnn_decoder.ad3.PFactorGraph` would make
of their inputs, handed to the solver as arrays in one call (the same solution, bit for bit); the
graph-building helpers below serve the constrained forms, which add logic factors."""
import numpy as np

from .. import _decoder
from .factor_graph import PFactorGraph, _real, _reported, _verbosity

__all__ = ["simple_grid", "general_graph"]


def _scores(values, name, shape):
    """values as a float64 array of the given shape (ints, or names for any size), or a
    TypeError (not numbers) / ValueError (shape) naming the argument."""
    try:
        array = np.asarray(values)
    except ValueError:  # (ragged nesting)
        raise TypeError(f"{name}: expected an array of real numbers") from None
    if array.dtype.kind not in "biuf" and array.size:
        raise TypeError(f"{name}: expected real numbers, got an array of dtype {array.dtype}")
    array = array.astype(np.float64, copy=False)  # (only read: the graph copies what it keeps)
    if array.ndim != len(shape) or any(isinstance(s, int) and s != t for s, t in zip(shape, array.shape)):
        expected = "(" + ", ".join(str(s) for s in shape) + ")"
        raise ValueError(f"{name}: expected an array of shape {expected}, got shape {array.shape}")
    return array


def _edges(edges, num_from, num_to, name="edges", same_nodes=True):
    """edges as a list of [a, b] node index pairs, 0 <= a < num_from and 0 <= b < num_to (a != b
    when both index the same nodes), or an error naming the argument (negative indices would
    silently pick nodes from the end). Checked in Python on the list: for the graphs these
    functions build, faster than numpy's per-call cost."""
    array = np.asarray(edges)
    if array.size == 0:
        return []
    if array.dtype.kind not in "iu":
        raise TypeError(f"{name}: expected integer node indices, got dtype {array.dtype}")
    if array.ndim != 2 or array.shape[1] != 2:
        raise ValueError(f"{name}: expected an array of shape (n_edges, 2), got shape {array.shape}")
    pairs = array.tolist()
    for k, (a, b) in enumerate(pairs):
        if not (0 <= a < num_from and 0 <= b < num_to):
            count = num_from if not 0 <= a < num_from else num_to
            raise ValueError(f"{name}: edge {k} {(a, b)} has a node index out of range 0..{count - 1}")
        if same_nodes and a == b:
            raise ValueError(f"{name}: edge {k} joins node {a} to itself")
    return pairs


def _pairwise_inputs(unaries, edges, edge_weights):
    """The single-type form's inputs, checked: unaries (N, L) and edge_weights (E, L, L) as
    arrays, edges as a list of E pairs."""
    unaries = _scores(unaries, "unaries", ("n_nodes", "n_states"))
    edges = _edges(edges, len(unaries), len(unaries))
    edge_weights = _scores(edge_weights, "edge_weights", ("n_edges", "n_states", "n_states"))
    if unaries.shape[1] != edge_weights.shape[1]:
        raise ValueError("incompatible shapes of unaries and edge_weights.")
    if edge_weights.shape[1] != edge_weights.shape[2]:
        raise ValueError("Edge weights need to be of shape (n_edges, n_states, n_states)!")
    if edge_weights.shape[0] != len(edges):
        raise ValueError("Number of edge weights different from number of edges")
    return unaries, edges, edge_weights


def _typed_unaries(l_unaries, l_edges, l_edge_weights):
    """The typed form's per-type unaries (N_t, L_t) as arrays, with T^2 lists of edges and weights."""
    l_unaries = [_scores(u, f"unaries[{t}]", ("n_nodes", "n_states")) for t, u in enumerate(l_unaries)]
    if len(l_edges) != len(l_unaries) ** 2 or len(l_edge_weights) != len(l_unaries) ** 2:
        raise ValueError("edges and edge_weights: expected T^2 lists for T node types")
    return l_unaries


def _multi_variables(graph, unaries):
    """One multi-valued variable of `graph` per row of unaries (N, L), scored by its row."""
    variables = []
    n_states = unaries.shape[1]
    for row in unaries.tolist():
        v = graph.create_multi_variable(n_states)
        v.set_log_potentials(row)
        variables.append(v)
    return variables


def _dense_factors(graph, from_nodes, to_nodes, pairs, weights):
    """A dense factor of `graph` per edge (a, b) of pairs, from_nodes[a] to to_nodes[b], with
    the edge's row of weights (E, ...)."""
    if not pairs:
        return  # (reshape cannot infer a row length from no rows)
    for (a, b), table in zip(pairs, weights.reshape(len(pairs), -1).tolist()):
        graph.create_factor_dense([from_nodes[a], to_nodes[b]], table)


def _typed_edges(graph, per_type, l_unaries, l_edges, l_edge_weights):
    """Dense factors of `graph` for the typed form's T^2 edge lists (list k: types divmod(k, T)),
    checked; returns the edges as lists of pairs."""
    n_types = len(l_unaries)
    checked = []
    for k, (edges, weights) in enumerate(zip(l_edges, l_edge_weights)):
        ti, tj = divmod(k, n_types)
        edges = _edges(edges, len(l_unaries[ti]), len(l_unaries[tj]), f"edges[{k}]", same_nodes=ti == tj)
        shape = (len(edges), l_unaries[ti].shape[1], l_unaries[tj].shape[1])
        if edges:
            _dense_factors(graph, per_type[ti], per_type[tj], edges, _scores(weights, f"edge_weights[{k}]", shape))
        checked.append(edges)
    return checked


def _typed_outputs(l_unaries, l_edges, marginals, edge_marginals):
    """The typed form's marginals split per type (N_t, L_t) and per edge list (E_k, L_i L_j)."""
    n_types = len(l_unaries)
    marginals, edge_marginals = np.asarray(marginals), np.asarray(edge_marginals)
    node_out, start = [], 0
    for u in l_unaries:
        node_out.append(marginals[start:start + u.size].reshape(u.shape))
        start += u.size
    edge_out, start = [], 0
    for k, edges in enumerate(l_edges):
        ti, tj = divmod(k, n_types)
        size = l_unaries[ti].shape[1] * l_unaries[tj].shape[1]
        edge_out.append(edge_marginals[start:start + len(edges) * size].reshape(len(edges), size))
        start += len(edges) * size
    return node_out, edge_out


def _solve_arrays(solver, arrays, verbose, n_iterations, eta, exact):
    """general_graph's answer (marginals, edge_marginals, value, status) straight from its arrays, by
    solver (_decoder.solve_pairwise_arrays or solve_typed_arrays), which checks them in C++; None
    when they are not what it takes (general_graph's checks then name what is wrong). The common
    case, pystruct's: numpy arrays, a float eta and an int verbose."""
    method = "exact" if exact else "ad3"
    solved = solver(method, *arrays, n_iterations, eta, True, PFactorGraph._tol, 1e-9, 1e-9)
    if solved is None:
        return None
    value, score, bound, status, iterations, marginals, edge_marginals = solved
    value, status = _reported(method, value, score, bound, status, iterations, verbose)
    return marginals, edge_marginals, value, status


def _solve_checked(solver, arrays, verbose, n_iterations, eta, exact):
    """_solve_arrays on arrays that general_graph's checks have passed, with verbose and eta
    checked here."""
    eta = eta if type(eta) is float else _real(eta, "eta")
    solved = _solve_arrays(solver, arrays, _verbosity(verbose), n_iterations, eta, exact)
    if solved is None:
        raise RuntimeError("ccnn_decoder: the solver refused arrays that passed general_graph's checks")
    return solved


def _pair_array(pairs):
    """A list of (a, b) pairs as an (E, 2) int64 array."""
    return np.array(pairs, dtype=np.int64).reshape(len(pairs), 2)


def simple_grid(unaries, pairwise, verbose=1):
    """MAP on a 4-connected grid: unaries (height, width, n_states), one shared pairwise table
    (n_states, n_states). Returns (marginals, edge_marginals, value, status)."""
    unaries = _scores(unaries, "unaries", ("height", "width", "n_states"))
    height, width, n_states = unaries.shape
    pairwise = _scores(pairwise, "pairwise", (n_states, n_states))
    # Cells row-major; per cell, the edge from its left neighbour, then the one from above.
    edges = []
    for i in range(height):
        for j in range(width):
            cell = i * width + j
            if j > 0:
                edges.append((cell - 1, cell))
            if i > 0:
                edges.append((cell - width, cell))
    marginals, edge_marginals, value, status = _solve_checked(
        _decoder.solve_pairwise_arrays, (unaries.reshape(height * width, n_states), _pair_array(edges),
                                         np.broadcast_to(pairwise, (len(edges), n_states, n_states))),
        verbose, PFactorGraph._max_iter, PFactorGraph._eta, False)
    return marginals.reshape(unaries.shape), edge_marginals, value, status


def general_graph(unaries, edges, edge_weights, verbose=1, n_iterations=1000, eta=.1, exact=False):
    """MAP on a general pairwise graph, the reference's two forms: unaries (N, L), edges (E, 2),
    edge_weights (E, L, L); or, typed, lists of per-type unaries (N_t, L_t) and T^2 lists of edges
    and weights between types. Returns (marginals, edge_marginals, value, status)."""
    if isinstance(unaries, list):
        return _general_graph_typed(unaries, edges, edge_weights, verbose, n_iterations, eta, exact)
    if (type(unaries) is type(edges) is type(edge_weights) is np.ndarray and unaries.dtype == edge_weights.dtype
            == np.float64 and edges.dtype.kind in "iu" and type(eta) is float and type(verbose) is int):
        solved = _solve_arrays(_decoder.solve_pairwise_arrays, (unaries, edges, edge_weights), verbose,
                               n_iterations, eta, exact)
        if solved is not None:
            return solved
    unaries, edges, edge_weights = _pairwise_inputs(unaries, edges, edge_weights)
    return _solve_checked(_decoder.solve_pairwise_arrays, (unaries, _pair_array(edges), edge_weights), verbose,
                          n_iterations, eta, exact)


def _general_graph_typed(l_unaries, l_edges, l_edge_weights, verbose, n_iterations, eta, exact):
    if type(eta) is float and type(verbose) is int:
        solved = _solve_arrays(_decoder.solve_typed_arrays, (l_unaries, l_edges, l_edge_weights), verbose,
                               n_iterations, eta, exact)
        if solved is not None:
            return solved
    l_unaries = _typed_unaries(l_unaries, l_edges, l_edge_weights)
    n_types = len(l_unaries)
    checked_edges, checked_weights = [], []
    for k, (edges, weights) in enumerate(zip(l_edges, l_edge_weights)):
        ti, tj = divmod(k, n_types)
        edges = _edges(edges, len(l_unaries[ti]), len(l_unaries[tj]), f"edges[{k}]", same_nodes=ti == tj)
        if edges:
            shape = (len(edges), l_unaries[ti].shape[1], l_unaries[tj].shape[1])
            weights = _scores(weights, f"edge_weights[{k}]", shape)
        checked_edges.append(_pair_array(edges))
        checked_weights.append(weights)
    return _solve_checked(_decoder.solve_typed_arrays, (l_unaries, checked_edges, checked_weights), verbose,
                          n_iterations, eta, exact)
