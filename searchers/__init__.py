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
)
from searchers.registry import (
    MatchedBudget,
    SearcherEntry,
    available,
    baseline_name,
    default_compare,
    display_rank,
    get_searcher,
    paper_method_name,
    register_searcher,
    registered_searchers,
    searcher_defaults,
    searcher_entry,
    sweep_parameters,
)

# Registration order is the order of the searchers everywhere (random before evolution, as
# `compare` runs them); the baseline, evolution, leads tables and legends (display_rank).
from searchers.random_search import RandomParams, RandomSearcher  # isort: skip
from searchers.evolution import EvolutionParams, EvolutionSearcher  # isort: skip
from searchers.pcf import CFParams, PCFISParams, PCFParams, freeze_depth  # isort: skip

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
    "MatchedBudget",
    "NoParams",
    "PCFISParams",
    "PCFParams",
    "RandomParams",
    "RandomSearcher",
    "Score",
    "SearchSpace",
    "Searcher",
    "SearcherEntry",
    "available",
    "baseline_name",
    "default_compare",
    "display_rank",
    "freeze_depth",
    "get_searcher",
    "paper_method_name",
    "register_searcher",
    "registered_searchers",
    "searcher_defaults",
    "searcher_entry",
    "sweep_parameters",
]
