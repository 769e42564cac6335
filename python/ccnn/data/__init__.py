"""ccnn.data: the synthetic AU data set, loaders of DISFA / FERA2015 / UNBC-McMaster / generic CSV,
subject-independent splits, the torch Dataset of pre-processed faces and balanced samplers.

Names are imported on first use (PEP 562), so worker processes that need one small module (for
example the renderer) do not pay for importing scipy or torch.
"""
from importlib import import_module

_EXPORTS = {
    "CONTEXT_AUS": "synth_labels",
    "AU_NAMES": "synth_labels",
    "generate_synthetic": "synthetic",
    "contact_sheet": "synthetic",
    "AUDataset": "dataset",
    "load_dataset": "loaders",
    "load_csv": "dataset",
    "split_subjects": "dataset",
    "subject_folds": "dataset",
    "read_image": "dataset",
    "load_disfa": "loaders",
    "load_fera2015": "loaders",
    "load_unbc": "loaders",
    "FaceDataset": "torch_data",
    "SubjectBalancedSampler": "samplers",
    "LevelBalancedSampler": "samplers",
    "PairBalancedSampler": "samplers",
    "MultiDatasetSampler": "samplers",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
