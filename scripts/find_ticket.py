#!/usr/bin/env python
"""Find a lottery ticket by IMP; the same as `bert-tickets find`, for `accelerate launch`:

accelerate launch scripts/find_ticket.py --task rte --model bert-base-uncased --output_dir runs/rte
"""

import sys

from bert_tickets.cli import main

if __name__ == "__main__":
    sys.exit(main(["find", *sys.argv[1:]]))
