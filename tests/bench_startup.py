"""Start-up time of ``python -m server`` until ``/healthz`` answers, side by side.

    python tests/bench_startup.py [--rounds 5] [--tpu auto] [--against OTHER_CHECKOUT]

Starts the server of this checkout (and, with ``--against``, of another checkout, e.g. a
worktree of an older commit), alternating, and prints the median seconds from spawning the
process to the first 200 from ``/healthz`` for each, and their ratio.
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import liveserver
from liveserver import Server

ROOT = Path(__file__).resolve().parents[1]


def once(checkout: Path, tpu: str, shared: Path) -> float:
    with tempfile.TemporaryDirectory() as data:
        liveserver.ROOT = checkout  # the server's working directory: whose code runs
        start = time.monotonic()
        server = Server(Path(data), "synthetic", shared, "--tpu", tpu)
        elapsed = time.monotonic() - start
        server.stop()
    return elapsed


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--tpu", default="auto")
    p.add_argument("--against", type=Path, help="another checkout to start alternately")
    args = p.parse_args(argv)
    shared = ROOT.parent / "shared"
    checkouts = [ROOT] + ([args.against.resolve()] if args.against else [])
    times = {c: [] for c in checkouts}
    for _ in range(args.rounds):
        for checkout in checkouts:
            times[checkout].append(once(checkout, args.tpu, shared))
    medians = {c: statistics.median(t) for c, t in times.items()}
    for checkout, median in medians.items():
        spread = ", ".join(f"{t:.2f}" for t in times[checkout])
        print(f"{checkout}: median {median:.2f} s to /healthz ({spread})")
    if args.against:
        print(f"ratio this / other: {medians[ROOT] / medians[checkouts[1]]:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
