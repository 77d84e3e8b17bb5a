"""How far a freezing searcher freezes when scores carry no signal at all (genetic drift alone).

Each candidate's score is an independent uniform draw, so selection picks parents at random and
any majority share above 1 / choices comes from the evolution operators alone (10 parents, 25
mutations, 25 crossovers). A freeze rule whose threshold drift passes on most blocks freezes
whatever the supernet says: compare these depths with the frozen depths of real runs
(reports/reference-cpu/README.md). The space, its MAC limit and the searcher's preset are the
ones ``pcfes search`` uses; reports run the same check (harness.rank_check.drift_depths) beside each real run.

    python scripts/freeze_under_drift.py --supernet fairnas-cpu --searcher pcf-es --seeds 20
"""

from __future__ import annotations

import argparse
import statistics

from harness import checkpoints
from harness.config import RunConfig
from harness.rank_check import drift_depths
from harness.resolution import resolve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--supernet", required=True)
    parser.add_argument("--searcher", default="pcf-es")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--generations", type=int, default=20)
    args = parser.parse_args()
    run = resolve(RunConfig(supernet=args.supernet, searcher=args.searcher))
    config, limit = run.config, run.mac_limit
    outcomes = drift_depths(args.supernet, {}, args.searcher, dict(config.searcher_params), limit, seeds=args.seeds, generations=args.generations)
    blocks = len(checkpoints.build_supernet(config).blocks)
    depths = [depth for _, depth in outcomes]
    firsts = [first for first, _ in outcomes if first is not None]
    first_text = f"first freeze after generation {statistics.median(firsts):g} (median of those that froze)" if firsts else "never froze"
    print(
        f"{args.searcher} {dict(config.searcher_params)} on {args.supernet} ({blocks} blocks) with random scores, "
        f"{args.seeds} seeds: final frozen depth median {statistics.median(depths):g} (min {min(depths)}, "
        f"max {max(depths)}); all blocks frozen in {sum(d == blocks for d in depths)}; no freeze in "
        f"{sum(d == 0 for d in depths)}; {first_text}"
    )


if __name__ == "__main__":
    main()
