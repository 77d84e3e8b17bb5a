"""How far a freezing searcher freezes when scores carry no signal at all (genetic drift alone).

Each candidate's score is an independent uniform draw, so selection picks parents at random and
any majority share above 1 / choices comes from the evolution operators alone (10 parents, 25
mutations, 25 crossovers). A freeze rule whose threshold drift passes on most blocks freezes
whatever the supernet says: compare these depths with the frozen depths of real runs
(reports/reference-cpu/README.md). The space, its MAC limit and the searcher's preset are the
ones ``pcfes search`` uses.

    python scripts/freeze_under_drift.py --supernet fairnas-cpu --searcher pcf-es --seeds 20
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np

from harness import workflow
from harness.config import RunConfig
from supernets import Supernet, get_supernet


def frozen_depths(net: Supernet, supernet: str, searcher: str, seeds: int, generations: int) -> list[tuple[int | None, int]]:
    """Per seed: the generation after which the first freeze happened (None: never) and the final frozen depth."""
    outcomes = []
    for seed in range(seeds):
        config = workflow.resolve(RunConfig(supernet=supernet, searcher=searcher, seed=seed))
        search = workflow.make_searcher(config, net)
        scores = np.random.default_rng([seed, 1])  # independent of the searcher's own stream
        first, depth = None, 0
        for generation in range(1, generations + 1):
            if search.done():
                break
            archs = search.ask()
            search.tell(list(zip(archs, scores.random(len(archs)).tolist())))
            depth = len(search.hints().frozen)
            if depth and first is None:
                first = generation
        outcomes.append((first, depth))
    return outcomes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--supernet", required=True)
    parser.add_argument("--searcher", default="pcf-es")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--generations", type=int, default=20)
    args = parser.parse_args()
    net = get_supernet(args.supernet)
    params = workflow.resolve(RunConfig(supernet=args.supernet, searcher=args.searcher)).searcher_params
    outcomes = frozen_depths(net, args.supernet, args.searcher, args.seeds, args.generations)
    depths = [depth for _, depth in outcomes]
    firsts = [first for first, _ in outcomes if first is not None]
    first_text = f"first freeze after generation {statistics.median(firsts):g} (median of those that froze)" if firsts else "never froze"
    print(
        f"{args.searcher} {dict(params)} on {args.supernet} ({net.num_blocks} blocks) with random scores, "
        f"{args.seeds} seeds: final frozen depth median {statistics.median(depths):g} (min {min(depths)}, "
        f"max {max(depths)}); all blocks frozen in {sum(d == net.num_blocks for d in depths)}; no freeze in "
        f"{sum(d == 0 for d in depths)}; {first_text}"
    )


if __name__ == "__main__":
    main()
