"""The one owner of a run directory's file names (open_lth's ``paths.py``). Nothing else in the
package spells a file name of a run directory.

Layout (``--output_dir``)::

    run_config.json                     hyperparameters + their hash (a re-run must match it)
    initial_head_seed{S}.safetensors    task head at level 0 (per seed), restored every level
    rewind_step{K}_seed{S}/             the seed's level-0 state after K steps (K > 0): every weight,
                                        LR schedule position and step count; later levels continue from it
                                        (data diet: the seed's pre-training on the subset; every level)
    rewind_step{K}.safetensors          backbone after K steps of level-0 training or of the data diet's
                                        pre-training (K > 0; what --rewind_mode backbone_restart rewinds to)
    level_{LL}/ticket/                  the level's TicketMask (mask + ticket_config.json)
    level_{LL}/seed_{S}/                Trainer output_dir of that seed (log_history.json)
    level_{LL}/trained_head.safetensors (with --keep_trained_head)
    level_{LL}/trained_model.safetensors (with --save_trained: the fine-tuned task model, first seed)
    level_{LL}/metrics.json             metrics per seed, mean/std; written last = level complete
    level_00/instability/               the calibrated adaptive schedule's second dense copy and its path
    summary.json, summary.csv           the table: level, sparsity, metric, Δ vs dense, matching
    stability/level_{LL}_rewind{K}[_continued][_seedsA-B]/  instability analysis (stability.json written
                                        last, path.png); _continued: the copies continued from step K's
                                        whole state; _seedsA-B: data seeds other than 1 and 2
    stability/successive_{KK}_{LL}/     path between the trained levels KK = LL - 1 and LL (same files)
    .bert-tickets.lock(.holder.json)    while a run holds the directory (see results/lock.py)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

RUN_CONFIG_FILE = "run_config.json"
METRICS_FILE = "metrics.json"
SUMMARY_JSON = "summary.json"
SUMMARY_CSV = "summary.csv"
LOG_HISTORY_FILE = "log_history.json"
TRAINED_HEAD_FILE = "trained_head.safetensors"
TRAINED_MODEL_FILE = "trained_model.safetensors"
TICKET_DIR = "ticket"
LOCK_FILE = ".bert-tickets.lock"
LOCK_HOLDER_FILE = ".bert-tickets.lock.holder.json"


def check_output_dir(path: str | os.PathLike, option: str = "--output_dir") -> None:
    """Refuse, before anything is written, an output directory that cannot become one: an
    existing non-directory, or a place whose nearest existing parent is not a writable
    directory (e.g. a read-only filesystem).

    Raises:
        ValueError: one line naming ``option`` and the reason.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{option} {path} is a file, not a directory")
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise ValueError(f"{option} {path}: {probe} is a file, so the directory cannot be created")
    import tempfile

    try:  # a real write (then removed): os.access says yes to root on a read-only filesystem
        with tempfile.TemporaryFile(dir=probe, prefix=".bert-tickets-probe."):
            pass
    except OSError as err:
        raise ValueError(f"{option} {path}: cannot write in {probe} ({err.strerror or err})") from None


@dataclass(frozen=True)
class RunPaths:
    """Paths inside one run directory ``root``."""

    root: Path

    def __init__(self, root: str | os.PathLike):
        object.__setattr__(self, "root", Path(root))

    @property
    def run_config(self) -> Path:
        return self.root / RUN_CONFIG_FILE

    @property
    def summary_json(self) -> Path:
        return self.root / SUMMARY_JSON

    @property
    def summary_csv(self) -> Path:
        return self.root / SUMMARY_CSV

    @property
    def lock_file(self) -> Path:
        return self.root / LOCK_FILE

    @property
    def lock_holder(self) -> Path:
        return self.root / LOCK_HOLDER_FILE

    def initial_head(self, seed: int) -> Path:
        return self.root / f"initial_head_seed{seed}.safetensors"

    def rewind_point(self, step: int) -> Path:
        return self.root / f"rewind_step{step}.safetensors"

    def rewind_start(self, step: int, seed: int) -> Path:
        """``rewind_step{K}_seed{S}/``: the seed's whole level-0 state after K steps (every weight,
        schedule position, step count: a Trainer checkpoint directory), where every later level of
        that seed continues from (``--rewind_mode state``); with a data diet, the seed's state after
        K steps of pre-training on the subset, where every level continues from."""
        return self.root / f"rewind_step{step}_seed{seed}"

    def data_diet(self) -> Path:
        """``data_diet/``: the EL2N scores (``el2n.safetensors``), the rewind subset
        (``subset.json``) and the short runs' Trainer directories of data-diet rewinding."""
        return self.root / "data_diet"

    def level(self, level: int) -> Path:
        return self.root / f"level_{level:02d}"

    def stability(self, level: int, rewind_step: int, continued: bool = False, data_seeds: tuple[int, int] = (1, 2)) -> Path:
        """Directory of the instability analysis of ``level`` from rewind step ``rewind_step``
        (``…_continued``: the copies continued from the whole state at that step, ``--rewind_mode
        state``; without the suffix, rewound weights with the schedule restarted, or step 0), with
        the copies' data seeds (``…_seedsA-B`` unless they are the default 1 and 2)."""
        seeds = "" if tuple(data_seeds) == (1, 2) else f"_seeds{data_seeds[0]}-{data_seeds[1]}"
        return self.root / "stability" / f"level_{level:02d}_rewind{rewind_step}{'_continued' if continued else ''}{seeds}"

    def dense_instability(self) -> Path:
        """``level_00/instability/``: the second dense copy that the calibrated adaptive schedule
        trains (one extra fine-tune of the first seed, another data order) and its path to level
        0's trained network (``path/``)."""
        return self.level(0) / "instability"

    def successive(self, level: int) -> Path:
        """Directory of the linear path between the trained networks of ``level - 1`` and ``level``."""
        return self.root / "stability" / f"successive_{level - 1:02d}_{level:02d}"

    def ticket(self, level: int) -> Path:
        return self.level(level) / TICKET_DIR

    def mask_search(self, level: int) -> Path:
        """``level_LL/mask_search/``: the Trainer directory of the level's mask search on other
        data (``find --mask_data``; first seed)."""
        return self.level(level) / "mask_search"

    def mask_search_record(self, level: int) -> Path:
        """``level_LL/mask_search.json``: that search's source, schedule, steps and examples."""
        return self.level(level) / "mask_search.json"

    def early_bird(self, level: int) -> Path:
        """``level_LL/early_bird/``: the Trainer directory of the level's early-bird mask search
        (``find --early_bird``; one seed, stopped when the next mask settles)."""
        return self.level(level) / "early_bird"

    def early_bird_record(self, level: int) -> Path:
        """``level_LL/early_bird.json``: what the level's mask search saw (mask distances, the step
        it stopped at, its optimizer steps and the metric at that point); written last, so its
        presence (with the next level's ticket) marks the search complete."""
        return self.level(level) / "early_bird.json"

    def seed(self, level: int, seed: int) -> Path:
        return self.level(level) / f"seed_{seed}"

    def log_history(self, level: int, seed: int) -> Path:
        return self.seed(level, seed) / LOG_HISTORY_FILE

    def trained_head(self, level: int) -> Path:
        return self.level(level) / TRAINED_HEAD_FILE

    def trained_model(self, level: int) -> Path:
        return self.level(level) / TRAINED_MODEL_FILE

    def metrics(self, level: int) -> Path:
        return self.level(level) / METRICS_FILE

    def level_dirs(self) -> list[Path]:
        """Existing ``level_*`` directories, in order."""
        return sorted(self.root.glob("level_*"))

    def metrics_files(self) -> list[Path]:
        """Existing ``level_*/metrics.json`` files (complete levels), in order."""
        return sorted(self.root.glob(f"level_*/{METRICS_FILE}"))
