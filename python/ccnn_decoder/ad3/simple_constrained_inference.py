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
from .simple_inference import (_dense_factors, _multi_variables, _pairwise_inputs, _typed_edges, _typed_outputs,
                               _typed_unaries)

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
    unaries, edges, edge_weights = _pairwise_inputs(unaries, edges, edge_weights)
    n_states = unaries.shape[1]
    graph = PFactorGraph()
    nodes = _multi_variables(graph, unaries)
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
    _dense_factors(graph, nodes, nodes, edges, edge_weights)
    value, marginals, edge_marginals, status = _solve(graph, n_iterations, eta, exact, verbose)
    return (np.array(marginals).reshape(unaries.shape), np.array(edge_marginals).reshape(edge_weights.shape),
            value, status)


def general_constrained_graph_multitype(l_unaries, l_edges, l_edge_weights, constraints, verbose=1,
                                        n_iterations=1000, eta=0.1, exact=False):
    """Typed form: per-type unaries (N_t, L_t), T^2 lists of edges and weights between types,
    constraints (operator, nodes per type, states per type, negated per type[, (type, node,
    state, negated)]). Returns per-type marginals, per-type-pair edge marginals (E, L_i L_j),
    value, status."""
    l_unaries = _typed_unaries(l_unaries, l_edges, l_edge_weights)
    n_types = len(l_unaries)
    n_states = [u.shape[1] for u in l_unaries]
    graph = PFactorGraph()
    nodes = [_multi_variables(graph, unaries) for unaries in l_unaries]
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
    edges = _typed_edges(graph, nodes, l_unaries, l_edges, l_edge_weights)
    value, marginals, edge_marginals, status = _solve(graph, n_iterations, eta, exact, verbose)
    node_out, edge_out = _typed_outputs(l_unaries, edges, marginals, edge_marginals)
    return node_out, edge_out, value, status
