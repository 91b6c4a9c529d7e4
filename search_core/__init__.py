"""E2RNAS search core: a supernet searched on five objectives with MGDA.

The paper's method (sections III and IV-B) in PyTorch alone: the search space and supernet,
the evaluation network and its exact size, the differentiable cost model, the objectives,
the bi-level step, MGDA weights by Frank-Wolfe, datasets, and a checkpointed search loop that
reports through a callback. Nothing here imports Ray, a database or a web framework.

The supernet is one of the three backbones of Table IV (``backbone`` in
:mod:`search_core.config`): DARTS's (:mod:`search_core.model_search`), PC-DARTS's partial
channels and edge normalisation (:mod:`search_core.partial`), or P-DARTS's progressive stages
(:mod:`search_core.progressive`); checkpoints are written by :mod:`search_core.checkpoint`.
A genotype is retrained by :mod:`search_core.evaluate` and measured by
:mod:`search_core.measure` (the front metrics and the paper-protocol measures beside them).
The ImageNet transfer of Table V (IV-D-2) retrains a genotype in DARTS's ImageNet network
(:mod:`search_core.model_eval`) on images read as :mod:`search_core.imagenet` says.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Public names and the module that defines each. They load on first use (PEP 562), so that
# `import search_core.config` for a quick check of a sweep file does not pay for torch.
_EXPORTS = {
    "PRESETS": "config",
    "SearchConfig": "config",
    "preset": "config",
    "CheckpointError": "errors",
    "ConfigError": "errors",
    "DatasetError": "errors",
    "E2RNASError": "errors",
    "GenotypeError": "errors",
    "BUNDLED": "genotypes",
    "PRIMITIVES": "genotypes",
    "Genotype": "genotypes",
    "derive_genotype": "derive",
    "load_genotype": "genotypes",
    "min_norm_weights": "mgda",
    "EvalNetwork": "model_eval",
    "count_flops_m": "model_eval",
    "count_params_m": "model_eval",
    "Reporter": "search",
    "SearchResult": "search",
    "run_search": "search",
}

if TYPE_CHECKING:
    from search_core.config import PRESETS, SearchConfig, preset
    from search_core.derive import derive_genotype
    from search_core.errors import (
        CheckpointError,
        ConfigError,
        DatasetError,
        E2RNASError,
        GenotypeError,
    )
    from search_core.genotypes import BUNDLED, PRIMITIVES, Genotype, load_genotype
    from search_core.mgda import min_norm_weights
    from search_core.model_eval import EvalNetwork, count_flops_m, count_params_m
    from search_core.search import Reporter, SearchResult, run_search


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"search_core.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'search_core' has no attribute '{name}'")


__all__ = [
    "BUNDLED",
    "PRESETS",
    "PRIMITIVES",
    "CheckpointError",
    "ConfigError",
    "DatasetError",
    "E2RNASError",
    "EvalNetwork",
    "Genotype",
    "GenotypeError",
    "Reporter",
    "SearchConfig",
    "SearchResult",
    "count_flops_m",
    "count_params_m",
    "derive_genotype",
    "load_genotype",
    "min_norm_weights",
    "preset",
    "run_search",
]
