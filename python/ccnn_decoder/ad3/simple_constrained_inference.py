"""ccnn_decoder.ad3.simple_constrained_inference: MAP on pairwise graphs with logic constraints between
node states (the reference's ``ad3.simple_constrained_inference``, same arguments and returns).

A constraint is ``(operator, nodes, states, negated)``: operator one of XOR, XOROUT, ATMOSTONE, OR,
OROUT, ANDOUT, IMPLY over the literals "node i is in state k" (negated: "is not"); ``states`` and
``negated`` may be one value for all nodes. In the typed form (lists per node type) ``nodes``,
``states`` and ``negated`` are lists per type, and an optional fifth item
``(type, node, state, negated)`` names the last literal (the output of XOROUT / OROUT / ANDOUT,
the conclusion of IMPLY).

The reference builds a binarized graph (one binary variable per node state and per edge state
pair, tied by XOR factors); here nodes are multi-valued variables with dense edge factors and the
constraints are logic factors on their states: the same MAP problem and the same relaxation.
Difference: a last literal of type 0 is used (the reference skips it: ``if last_type:``).
"""
import numpy as np

from .factor_graph import PFactorGraph
from .simple_inference import _edges, _scores

__all__ = ["general_constrained_graph", "general_constrained_graph_singletype",
           "general_constrained_graph_multitype"]


def general_constrained_graph(unaries, edges, edge_weights, constraints, verbose=1, n_iterations=1000,
                              eta=0.1, exact=False):
    """Simple form (unaries (N, L) array) or typed form (a list of per-type unaries); returns
    (marginals, edge_marginals, value, status)."""
    if isinstance(unaries, list):
        return general_constrained_graph_multitype(unaries, edges, edge_weights, constraints, verbose,
                                                   n_iterations, eta, exact)
    return general_constrained_graph_singletype(unaries, edges, edge_weights, constraints, verbose,
                                                n_iterations, eta, exact)


def _per_node(value, count):
    return list(value) if isinstance(value, (list, tuple)) else [value] * count


def _parts(constraint, c, sizes):
    """A constraint's items, checked: (operator, nodes, states, negated) or, where `sizes` allows
    a fifth, (..., last literal)."""
    if not isinstance(constraint, (list, tuple)) or len(constraint) not in sizes:
        raise ValueError(f"constraints[{c}]: expected (operator, nodes, states, negated"
                         + (", [last])" if 5 in sizes else ")") + f", got {constraint!r}")
    return list(constraint) + [None] * (5 - len(constraint))


def _node(nodes, i, where):
    """nodes[i] for an int i in range (a negative one would silently count from the end)."""
    if isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer)) or not 0 <= i < len(nodes):
        raise ValueError(f"{where}: node {i!r} is not an index in 0..{len(nodes) - 1}")
    return nodes[i]


def _solve(graph, n_iterations, eta, exact, verbose):
    return graph.solve(eta=eta, adapt=True, max_iter=n_iterations, branch_and_bound=exact, verbose=verbose)


def general_constrained_graph_singletype(unaries, edges, edge_weights, constraints, verbose=1,
                                         n_iterations=1000, eta=0.1, exact=False):
    """unaries (N, L), edges (E, 2), edge_weights (E, L, L), constraints: list of
    (operator, nodes, states, negated). Returns marginals (N, L), edge marginals (E, L, L), value,
    status."""
    unaries = _scores(unaries, "unaries", ("n_nodes", "n_states"))
    edges = _edges(edges, len(unaries), len(unaries))
    edge_weights = _scores(edge_weights, "edge_weights", ("n_edges", "n_states", "n_states"))
    if unaries.shape[1] != edge_weights.shape[1]:
        raise ValueError("incompatible shapes of unaries and edge_weights.")
    if edge_weights.shape[1] != edge_weights.shape[2]:
        raise ValueError("Edge weights need to be of shape (n_edges, n_states, n_states)!")
    if edge_weights.shape[0] != edges.shape[0]:
        raise ValueError("Number of edge weights different from number of edges")
    n_states = unaries.shape[1]
    graph = PFactorGraph()
    nodes = []
    for u in unaries:
        v = graph.create_multi_variable(n_states)
        v.set_log_potentials(u)
        nodes.append(v)
    if constraints and constraints is not True:
        for c, constraint in enumerate(constraints):
            operator, node_list, states, negated, _ = _parts(constraint, c, (4,))
            states = _per_node(states, len(node_list))
            negated = _per_node(negated, len(node_list))
            if len(states) != len(node_list):
                raise ValueError("Number of states differs from unary index number.")
            if len(negated) != len(node_list):
                raise ValueError("Number of negated differs from unary index number.")
            if max(states) >= n_states or min(states) < 0:
                raise ValueError("State should in [%d, %d]" % (0, n_states - 1))
            graph.create_factor_logic(
                operator, [_node(nodes, i, f"constraints[{c}]").get_state(k) for i, k in zip(node_list, states)],
                [bool(x) for x in negated])
    for (a, b), w in zip(edges, edge_weights):
        graph.create_factor_dense([nodes[a], nodes[b]], w.ravel())
    value, marginals, edge_marginals, status = _solve(graph, n_iterations, eta, exact, verbose)
    return (np.array(marginals).reshape(unaries.shape), np.array(edge_marginals).reshape(edge_weights.shape),
            value, status)


def general_constrained_graph_multitype(l_unaries, l_edges, l_edge_weights, constraints, verbose=1,
                                        n_iterations=1000, eta=0.1, exact=False):
    """Typed form: per-type unaries (N_t, L_t), T^2 lists of edges and weights between types,
    constraints (operator, nodes per type, states per type, negated per type[, (type, node,
    state, negated)]). Returns per-type marginals, per-type-pair edge marginals (E, L_i L_j),
    value, status."""
    l_unaries = [_scores(u, f"unaries[{t}]", ("n_nodes", "n_states")) for t, u in enumerate(l_unaries)]
    n_types = len(l_unaries)
    if len(l_edges) != n_types ** 2 or len(l_edge_weights) != n_types ** 2:
        raise ValueError("edges and edge_weights: expected T^2 lists for T node types")
    n_states = [u.shape[1] for u in l_unaries]
    graph = PFactorGraph()
    nodes = []
    for unaries in l_unaries:
        row = []
        for u in unaries:
            v = graph.create_multi_variable(unaries.shape[1])
            v.set_log_potentials(u)
            row.append(v)
        nodes.append(row)
    for c, constraint in enumerate(constraints or []):
        operator, l_nodes, l_states, l_negated, last = _parts(constraint, c, (4, 5))
        literals, flags = [], []
        for typ, (node_list, states, negated) in enumerate(zip(l_nodes, l_states, l_negated)):
            if not node_list:
                continue
            states = _per_node(states, len(node_list))
            negated = _per_node(negated, len(node_list))
            if len(states) != len(node_list):
                raise ValueError("Type %d: Number of states differs from unary index number." % typ)
            if len(negated) != len(node_list):
                raise ValueError("type %d: Number of negated differs from unary index number." % typ)
            if max(states) >= n_states[typ] or min(states) < 0:
                raise ValueError("Type %d: State should in [%d, %d]" % (typ, 0, n_states[typ] - 1))
            literals.extend(_node(nodes[typ], i, f"constraints[{c}], type {typ}").get_state(k)
                            for i, k in zip(node_list, states))
            flags.extend(bool(x) for x in negated)
        if last is not None:
            typ, node, state, negated = last
            if not (isinstance(typ, (int, np.integer)) and 0 <= typ < n_types):
                raise ValueError(f"constraints[{c}]: the last literal's type {typ!r} is not in 0..{n_types - 1}")
            if not 0 <= state < n_states[typ]:
                raise ValueError("(last) Type %d: State should in [%d, %d]" % (typ, 0, n_states[typ] - 1))
            literals.append(_node(nodes[typ], node, f"constraints[{c}], last literal").get_state(state))
            flags.append(bool(negated))
        graph.create_factor_logic(operator, literals, flags)
    for k, (edges, weights) in enumerate(zip(l_edges, l_edge_weights)):
        ti, tj = divmod(k, n_types)
        edges = _edges(edges, len(l_unaries[ti]), len(l_unaries[tj]), f"edges[{k}]", same_nodes=ti == tj)
        shape = (len(edges), n_states[ti], n_states[tj])
        weights = _scores(weights, f"edge_weights[{k}]", shape) if len(edges) else np.zeros(shape)
        for (a, b), w in zip(edges, weights):
            graph.create_factor_dense([nodes[ti][a], nodes[tj][b]], w.ravel())
    value, marginals, edge_marginals, status = _solve(graph, n_iterations, eta, exact, verbose)
    marginals = np.asarray(marginals)
    node_out, start = [], 0
    for u in l_unaries:
        node_out.append(marginals[start:start + u.size].reshape(u.shape))
        start += u.size
    edge_marginals = np.asarray(edge_marginals)
    edge_out, start = [], 0
    for k, edges in enumerate(l_edges):
        ti, tj = divmod(k, n_types)
        size = n_states[ti] * n_states[tj]
        count = len(np.asarray(edges).reshape(-1, 2)) if np.size(edges) else 0
        edge_out.append(edge_marginals[start:start + count * size].reshape(count, size))
        start += count * size
    return node_out, edge_out, value, status
