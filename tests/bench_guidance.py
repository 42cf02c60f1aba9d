"""Does "teach this class next" help? A simulation on a folder of photos (one folder a class).

    python tests/bench_guidance.py [PHOTOS_DIR] [--budgets 10,20,40,60,90] [--repeats 5]

Starts from one example per class; each step adds one example from a pool, either of the
class the kiosk's guidance points at (``server.learn.quality.needs_examples_most``: the
lowest leave-one-out accuracy, then the fewest examples; the person then shows any photo of
that class, drawn at random here) or a photo drawn at random from the whole pool. Both get
the same budget of added examples; at each budget Auto and imprinting are scored on held-out
photos (25 %), and the medians over the repeats are printed side by side.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from server import datasets, models  # noqa: E402
from server.hw.extractor import open_extractor  # noqa: E402
from server.learn import make_learner  # noqa: E402
from server.learn.quality import cross_validate, needs_examples_most  # noqa: E402
from server.offline import embed_folder  # noqa: E402


def embed(folder: Path):
    embedded = embed_folder(open_extractor("off", download=False), datasets.scan(folder))
    return embedded.x, embedded.labels


def score(method: str, x, y, test_x, test_y) -> float:
    learner = make_learner(method)
    for c in np.unique(y):
        learner.add(int(c), x[y == c])
    if learner.needs_fit:
        learner.fit()
    return learner.accuracy(test_x, test_y)


def run(x, y, budgets, guided: bool, seed: int, test_fraction: float = 0.25) -> dict:
    rng = np.random.default_rng(seed)
    classes = np.unique(y)
    test = np.concatenate(
        [
            rng.permutation(np.flatnonzero(y == c))[: int(np.sum(y == c) * test_fraction)]
            for c in classes
        ]
    )
    pool = np.setdiff1d(np.arange(len(y)), test)
    chosen = [int(rng.choice(pool[y[pool] == c])) for c in classes]
    pool = np.setdiff1d(pool, chosen)
    scores = {}
    for step in range(1, max(budgets) + 1):
        if guided:
            report = cross_validate(x[chosen], y[chosen], classes)
            wanted = needs_examples_most(report)
            options = pool[y[pool] == wanted] if wanted is not None else pool
            pick = int(rng.choice(options if len(options) else pool))
        else:
            pick = int(rng.choice(pool))
        chosen.append(pick)
        pool = pool[pool != pick]
        if step in budgets:
            idx = np.array(chosen)
            scores[step] = {
                m: score(m, x[idx], y[idx], x[test], y[test]) for m in ("auto", "imprinting")
            }
    return scores


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default = ROOT.parent / "shared" / "data" / "sign-language-digits"
    p.add_argument("photos", nargs="?", type=Path, default=default)
    p.add_argument("--budgets", default="10,20,40,60,90")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    budgets = sorted(int(b) for b in args.budgets.split(","))
    try:
        x, y = embed(args.photos)
    except (datasets.DatasetError, models.ModelError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    rows = {}
    for strategy in ("guided", "random"):
        runs = [run(x, y, budgets, strategy == "guided", seed) for seed in range(args.repeats)]
        rows[strategy] = {
            b: {
                m: round(statistics.median(r[b][m] for r in runs), 4)
                for m in ("auto", "imprinting")
            }
            for b in budgets
        }
    if args.json:
        print(json.dumps(rows))
        return 0
    print(
        f"{'added':>6}  {'auto guided':>12} {'auto random':>12}  "
        f"{'impr. guided':>12} {'impr. random':>12}"
    )
    for b in budgets:
        g, r = rows["guided"][b], rows["random"][b]
        print(
            f"{b:>6}  {g['auto']:>12.3f} {r['auto']:>12.3f}  {g['imprinting']:>12.3f} "
            f"{r['imprinting']:>12.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
