"""KDCI off vs on for DeepInversion and DFND over several seeds (paired gains, time, memory).

    python benchmarks/kdci_effect.py --dataset digits --jobs 2        # CPU, a few minutes
    python benchmarks/kdci_effect.py --dataset fashion-mnist --jobs 2 # ../shared data, ~8 min
"""

from __future__ import annotations

import time

from common import finish, parser, print_table, print_telemetry, run_grid, summarise

VARIANTS = {"off": ["--kdci", "off"], "on": ["--kdci", "on"]}


def main(name: str = "kdci_effect", methods=("deepinv", "dfnd"), variants: dict = VARIANTS,
         reference: str = "off", description: str = __doc__) -> None:
    args = parser(description.splitlines()[0], list(methods)).parse_args()
    started = time.time()
    runs = run_grid(args, variants)
    rows = summarise(runs, args.methods, list(variants), reference=reference)
    print_table(rows, f"{args.dataset}: {args.student}, {args.epochs} epochs x {args.steps_per_epoch} "
                      f"steps, seeds {args.seeds}, params {args.param or 'defaults'}")
    print_telemetry(rows)
    finish(args, name, runs, rows, started)


if __name__ == "__main__":
    main()
