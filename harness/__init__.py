"""pcfes-bench harness: evaluation, measurement, results and reports for one-shot NAS searchers."""

__version__ = "0.1.0"
