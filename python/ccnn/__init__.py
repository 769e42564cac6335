"""ccnn: the Copula CNN (CCNN) application package: model, data, trainer, metrics and CLI."""

__version__ = "0.1.0"
