#!/usr/bin/env python
"""The transfer matrix; the same as `bert-tickets transfer`, for `accelerate launch` (each cell
then trains data-parallel over the launched processes; the main process writes the files):

    accelerate launch scripts/transfer_matrix.py --tickets runs/mlm runs/stsb --tasks stsb mrpc --sparsity 0.5 --output_dir transfer
"""

import sys

from bert_tickets.cli import main

if __name__ == "__main__":
    sys.exit(main(["transfer", *sys.argv[1:]]))
