"""Our version of the paper's Table 1: all six DFKD methods, KDCI off vs on, over seeds, with
each configuration's wall time and peak memory and the KDCI on/off time and memory ratios.

    python benchmarks/paper_table.py --dataset digits --jobs 2
    python benchmarks/paper_table.py --dataset fashion-mnist --jobs 2   # lenet5 -> lenet5_half
    python benchmarks/paper_table.py --dataset fashion-mnist --teacher-arch resnet34 \
        --student resnet18 --device cuda                                # on a GPU
"""


from kdci_effect import main

if __name__ == "__main__":
    main("paper_table", methods=("dafl", "deepinv", "fast", "cmi", "dfnd", "mosaickd"))
