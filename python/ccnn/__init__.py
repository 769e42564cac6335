"""ccnn: the Copula CNN (CCNN) application package: data, model, training, experiments, prediction
and the `ccnn` command line (docs/design.md describes how the modules fit together)."""

__version__ = "0.1.0"
