"""Re-measure the MAC limits recorded on the supernet registry entries (``mac_limit``) and print them as a table.

A real-size space's limit is the paper's 330 M; the script measures the share of uniformly
random archs above it. A CPU-scale space's limit is the MAC count that excludes the same share
of its own uniformly random archs (the ``1 - share`` quantile). Min and max MACs are exact:
blocks are independent, so they come from each block's cheapest and dearest op. MACs are
analytic, so a million archs take seconds.

    python scripts/mac_limits.py [--samples 1000000] [--seed 0]
"""

from __future__ import annotations

import argparse

import numpy as np

from supernets import get_supernet, registered_supernets


def limit_for_share(macs: np.ndarray, share: float) -> int:
    """The sampled MAC count whose share of the sample above it is closest to ``share``."""
    values, counts = np.unique(macs, return_counts=True)
    above = 1.0 - np.cumsum(counts) / len(macs)
    return int(values[np.argmin(np.abs(above - share))])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1_000_000, help="uniformly random archs per space")
    parser.add_argument("--seed", type=int, default=0, help="seed of each space's numpy Generator")
    args = parser.parse_args()

    measured_share: dict[str, float] = {}
    header = ("supernet", "blocks x choices", "min MACs", "max MACs", "median MACs", "recorded limit",
              "share above it", "measured limit", "share above it", "target share")
    print("| " + " | ".join(header) + " |")
    print("|" + " --- |" * len(header))
    # Real-size spaces first: their measured shares are the CPU-scale targets.
    limits = {name: entry.mac_limit for name, entry in registered_supernets().items() if entry.mac_limit is not None}
    for name, limit in sorted(limits.items(), key=lambda item: item[1].matches is not None):
        net = get_supernet(name)
        macs = net.sample_macs(np.random.default_rng(args.seed), args.samples)
        share = float((macs > limit.macs).mean())
        if limit.matches is None:
            measured_share[name] = share
            target, measured_limit = share, limit.macs
        else:
            target = measured_share[limit.matches]
            measured_limit = limit_for_share(macs, target)
        low, high = net.mac_range()
        choices = sorted(set(net.choices))
        row = (name, f"{net.num_blocks} x {'/'.join(map(str, choices))}", f"{low:,}", f"{high:,}",
               f"{int(np.median(macs)):,}", f"{limit.macs:,}", f"{share:.4f}", f"{measured_limit:,}",
               f"{float((macs > measured_limit).mean()):.4f}",
               f"{target:.4f}" + ("" if limit.matches is None else f" ({limit.matches})"))
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
