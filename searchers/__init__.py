"""Pure search algorithms: random, SPOS evolution, CF-ES, PCF-ES (+ importance sampling)."""

from searchers.base import (
    Arch,
    ConstraintError,
    CostLimit,
    GenerationalSearcher,
    GenerationDiagnostics,
    Hints,
    NoParams,
    Score,
    Searcher,
    SearchSpace,
    available,
    get_searcher,
    register_searcher,
    searcher_defaults,
)
from searchers.evolution import EvolutionParams, EvolutionSearcher
from searchers.pcf import (
    PRESETS,
    CFParams,
    PCFISParams,
    PCFParams,
    freeze_depth,
    preset_for,
)
from searchers.random_search import RandomParams, RandomSearcher

__all__ = [
    "Arch",
    "CFParams",
    "ConstraintError",
    "CostLimit",
    "EvolutionParams",
    "EvolutionSearcher",
    "GenerationDiagnostics",
    "GenerationalSearcher",
    "Hints",
    "NoParams",
    "PCFISParams",
    "PCFParams",
    "PRESETS",
    "RandomParams",
    "RandomSearcher",
    "Score",
    "SearchSpace",
    "Searcher",
    "available",
    "freeze_depth",
    "get_searcher",
    "preset_for",
    "register_searcher",
    "searcher_defaults",
]
