"""Scoring candidates under a fixed protocol, with exact prefix reuse and exact work accounting.

One module per concept: ``evaluator`` (the public ``Evaluator``), ``work`` (the work counter),
``units`` (a supernet as stem, blocks, head), ``prefix_tree`` (the within-generation walk),
``prefix_store`` (the byte-budgeted store across generations), ``importance`` (importance
sampling) and ``budget`` (the store's budget and what prefix nodes need).
"""

from harness.evaluation.budget import AUTO_DEVICE_SHARE, AUTO_HOST_SHARE, NodeNeed, format_reuse_plan, resolve_budget, reuse_plan
from harness.evaluation.evaluator import CandidateResult, EvaluationError, Evaluator
from harness.evaluation.importance import ImportanceDraw, ImportanceSubset, importance_sample
from harness.evaluation.work import SEARCH_WORK_PHASES, WORK_PHASES, WorkCounter

__all__ = [
    "AUTO_DEVICE_SHARE",
    "AUTO_HOST_SHARE",
    "SEARCH_WORK_PHASES",
    "WORK_PHASES",
    "CandidateResult",
    "EvaluationError",
    "Evaluator",
    "ImportanceDraw",
    "ImportanceSubset",
    "NodeNeed",
    "WorkCounter",
    "format_reuse_plan",
    "importance_sample",
    "resolve_budget",
    "reuse_plan",
]
