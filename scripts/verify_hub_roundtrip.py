#!/usr/bin/env python
"""End-to-end check of a real run's ticket through the Hub path, offline (issue 3).

1. ``push_run`` publishes one level of RUN_DIR through a stand-in for ``huggingface_hub.HfApi``
   (the test boundary of ``tests/publish/test_hub.py``: the uploaded folders are captured, nothing leaves
   the machine);
2. the captured uploads are written into a Hugging Face cache layout and the ticket is loaded
   back with ``TicketMask.from_pretrained(repo_id, revision=...)`` under ``HF_HUB_OFFLINE`` —
   the real ``hf_hub_download`` code path — and from the pushed folder by path; both must be
   bit-identical to the run's mask;
3. a copy of the run gets that level's ticket replaced by the loaded one and its
   ``metrics.json`` removed, and ``bert-tickets find`` is re-run with the run's own arguments:
   it resumes at that level, applies the loaded ticket to a fresh θ0 model, fine-tunes it, and
   the dev metric must equal the one the run recorded.

Usage: python scripts/verify_hub_roundtrip.py RUN_DIR --level N --base-model-id ID -- FIND_ARGS...
(FIND_ARGS: the arguments the run was made with, without --output_dir.)
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "publish"))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run_dir")
    p.add_argument("--level", type=int, required=True)
    p.add_argument("--base-model-id", required=True)
    p.add_argument("--repo-id", default="demo/bert-tickets-roundtrip")
    argv = sys.argv[1:]
    cut = argv.index("--") if "--" in argv else len(argv)
    a = p.parse_args(argv[:cut])
    find_args = argv[cut + 1 :]  # the run's own `find` arguments (without --output_dir)

    import huggingface_hub.constants
    from test_hub import FakeHfApi, cache_from_uploads  # the test boundary

    from bert_tickets.cli import main as cli_main
    from bert_tickets.publish import push_run
    from bert_tickets.ticket import TicketMask

    run = Path(a.run_dir)
    level_dir = run / f"level_{a.level:02d}"
    original = TicketMask.from_pretrained(level_dir / "ticket")
    recorded = json.loads((level_dir / "metrics.json").read_text())["result"]
    work = Path(tempfile.mkdtemp(prefix="roundtrip-"))

    api = FakeHfApi()
    push_run(run, a.repo_id, level=a.level, base_model_id=a.base_model_id, api=api)
    branch = [u["revision"] for u in api.uploads if u["revision"] != "main"][0]
    # the same folders written to disk (what `bert-tickets push --save-dir` produces), to load by path
    push_run(run, a.repo_id, level=a.level, base_model_id=a.base_model_id, save_dir=work / "pushed")
    sizes = {name: len(data) for name, data in api.uploads[0]["files"].items()}
    print(f"pushed level {a.level} as {a.repo_id}@{branch} and @main; files: {sizes}")

    cache = work / "hf-cache"
    cache_from_uploads(cache, api)
    huggingface_hub.constants.HF_HUB_OFFLINE = True
    t = time.perf_counter()
    by_id = TicketMask.from_pretrained(a.repo_id, revision=branch, cache_dir=cache)
    t_id = time.perf_counter() - t
    by_path = TicketMask.from_pretrained(work / "pushed" / branch)
    for name, ticket in (("repo id", by_id), ("path", by_path)):
        same = set(ticket.masks) == set(original.masks) and all(ticket.masks[n].equal(original.masks[n]) for n in original.masks)
        print(f"loaded by {name}: {ticket!r}; bit-identical to the run's mask: {same}")
        if not same:
            return 1
    print(f"from_pretrained by repo id from the cache: {t_id:.3f} s")

    copy = work / "run"
    shutil.copytree(run, copy)
    shutil.rmtree(copy / level_dir.name / "ticket")
    by_id.save_pretrained(copy / level_dir.name / "ticket")
    (copy / level_dir.name / "metrics.json").unlink()
    for later in sorted(copy.glob("level_*")):
        if int(later.name.split("_")[1]) > a.level:
            shutil.rmtree(later)
    rc = cli_main(["find", *find_args, "--output_dir", str(copy)])
    again = json.loads((copy / level_dir.name / "metrics.json").read_text())["result"]
    print(f"recorded {recorded['metric']} at level {a.level}: {recorded['mean']!r}; re-trained from the loaded ticket: {again['mean']!r}")
    equal = rc == 0 and again["mean"] == recorded["mean"] and again["num_pruned"] == recorded["num_pruned"]
    print("same dev metric:", equal)
    return 0 if equal else 1


if __name__ == "__main__":
    sys.exit(main())
