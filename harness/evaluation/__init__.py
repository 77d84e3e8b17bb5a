"""Scoring candidates under a fixed protocol, with exact prefix reuse and exact work accounting.

One module per concept: ``evaluator`` (the public ``Evaluator``), ``scoring`` (the protocol's
tensors and what a score is), ``work`` (the work counter and its phases), ``snapshot`` (a
frozen record of the evaluator's work, subtracted per generation), ``units`` (a supernet as
stem, blocks, head, run unit by unit), ``direct`` (modules compiled to the torch calls they
make, without the per-call module overhead), ``prefix_tree`` (the within-generation walk),
``prefix_store`` (the byte-budgeted store across generations), ``recalibration`` (BN
statistics re-estimated on the calibration batches), ``importance`` (importance sampling) and
``budget`` (the store's budget and what prefix nodes need).
"""

from harness.evaluation.budget import AUTO_DEVICE_SHARE, AUTO_HOST_SHARE, NodeNeed, format_reuse_plan, resolve_budget, reuse_plan
from harness.evaluation.evaluator import Evaluator
from harness.evaluation.importance import ImportanceDraw, ImportanceSubset, importance_sample
from harness.evaluation.scoring import CandidateResult, EvaluationError
from harness.evaluation.snapshot import WorkSnapshot
from harness.evaluation.work import (
    CANDIDATE_PHASES,
    PREPARE_PHASES,
    SEARCH_WORK_PHASES,
    WORK_PHASES,
    PhaseWork,
    WorkCounter,
    WorkPhase,
)

__all__ = [
    "AUTO_DEVICE_SHARE",
    "AUTO_HOST_SHARE",
    "CANDIDATE_PHASES",
    "PREPARE_PHASES",
    "SEARCH_WORK_PHASES",
    "WORK_PHASES",
    "CandidateResult",
    "EvaluationError",
    "Evaluator",
    "ImportanceDraw",
    "ImportanceSubset",
    "NodeNeed",
    "PhaseWork",
    "WorkCounter",
    "WorkPhase",
    "WorkSnapshot",
    "format_reuse_plan",
    "importance_sample",
    "resolve_budget",
    "reuse_plan",
]
