"""Which correction helps: none vs KDCI vs the ``balanced`` data-level correction vs KDCI +
``balanced``, paired by seed against none, for DeepInv, Fast and DFND (by default).

    python benchmarks/corrections.py --dataset fashion-mnist --jobs 2
    python benchmarks/corrections.py --dataset digits --jobs 2

The none and KDCI runs are the same command lines as paper_table.py's off and on runs, so a
shared ``--cache`` runs them once.
"""

from kdci_effect import main

VARIANTS = {"none": ["--kdci", "off"], "KDCI": ["--kdci", "on"],
            "balanced": ["--kdci", "off", "--correction", "balanced"],
            "KDCI + balanced": ["--kdci", "on", "--correction", "balanced"]}

if __name__ == "__main__":
    main("corrections", methods=("deepinv", "fast", "dfnd"), variants=VARIANTS, reference="none",
         description=__doc__)
