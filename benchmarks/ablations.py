"""The paper's ablations: Table 4 (original KDCI, random lambda, random prototypes, no P(z),
against KDCI off) and Figure 4 (a sweep over the dictionary size K).

    python benchmarks/ablations.py table --dataset fashion-mnist --methods fast deepinv dfnd --jobs 2
    python benchmarks/ablations.py ksweep --dataset fashion-mnist --methods deepinv --k 4 8 16 32 64
    python benchmarks/ablations.py ksweep --dataset fashion-mnist --methods dfnd --k 16 32 64 128 256
"""

from __future__ import annotations

import sys
import time

from common import finish, parser, print_table, print_telemetry, run_grid, summarise

TABLE = {"kdci off": ["--kdci", "off"], "original": ["--kdci", "on"],
         "random lambda": ["--kdci", "on", "--ablation", "random-lambda"],
         "random prototypes": ["--kdci", "on", "--ablation", "random-prototypes"],
         "no P(z)": ["--kdci", "on", "--ablation", "uniform-proportions"]}


def main() -> None:
    kind = sys.argv.pop(1) if len(sys.argv) > 1 and sys.argv[1] in ("table", "ksweep") else None
    if kind is None:
        sys.exit("usage: ablations.py {table,ksweep} [options]  (see --help of each)")
    ap = parser(__doc__.splitlines()[0], ["fast", "deepinv", "dfnd"] if kind == "table" else ["deepinv"])
    ap.add_argument("--k", nargs="+", type=int, default=[4, 8, 16, 32, 64], help="K values (ksweep)")
    args = ap.parse_args()
    started = time.time()
    if kind == "table":
        variants, reference = TABLE, "kdci off"
    else:
        variants = {"kdci off": ["--kdci", "off"]} | {f"K={k}": ["--kdci", "on", "--k", str(k)] for k in args.k}
        reference = "kdci off"
    runs = run_grid(args, variants)
    rows = summarise(runs, args.methods, list(variants), reference=reference)
    print_table(rows, f"{kind} on {args.dataset}: {args.student}, {args.epochs} epochs x "
                      f"{args.steps_per_epoch} steps, seeds {args.seeds}")
    print_telemetry(rows)
    finish(args, f"ablations-{kind}", runs, rows, started)


if __name__ == "__main__":
    main()
