"""Tiny checkpoints, tokenizers and data files for the task-kind tests (nothing is downloaded).

Note: in transformers 5 ``BertTokenizerFast(vocab_file=...)`` silently ignores the file (every
word becomes ``[UNK]``); the vocabulary must be passed as ``vocab=``.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers import BertModel, BertTokenizerFast

from conftest import tiny_config

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = (
    "the cat dog sat on a mat big small red blue ran fast slow home is not was who what where when did "
    "in of and to river city king queen built old new bridge north south park tree . , ? ' \""
).split()


def tiny_tokenizer(path: Path, words=WORDS) -> BertTokenizerFast:
    """A fast WordPiece tokenizer over ``SPECIALS + words``, saved to ``path``."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "vocab.txt").write_text("\n".join([*SPECIALS, *words]) + "\n")
    tok = BertTokenizerFast(vocab=str(path / "vocab.txt"))
    tok.save_pretrained(path)
    return tok


def write_tiny_checkpoint(path: Path, head_model_class=None, seed: int = 0) -> Path:
    """A 2-layer hidden-32 BERT (``conftest.tiny_config``) plus tokenizer in ``path``: a bare
    ``BertModel`` (with pooler, no task head) unless ``head_model_class`` is given."""
    tok = tiny_tokenizer(path)
    torch.manual_seed(seed)
    cls = head_model_class or BertModel
    cls(tiny_config(vocab_size=len(tok))).save_pretrained(path)
    return path


def squad_articles(n_articles: int = 5, seed: int = 0) -> list[dict]:
    """SQuAD-format ``data`` list: every article has 2 paragraphs with 2 questions each; answer
    positions are exact (``context[answer_start:].startswith(text)``)."""
    g = torch.Generator().manual_seed(seed)
    names = ["red dog", "blue cat", "old king", "new bridge", "big tree", "small park"]
    data = []
    for a in range(n_articles):
        paragraphs = []
        for p in range(2):
            filler = " ".join(WORDS[i] for i in torch.randint(0, 12, (10,), generator=g).tolist())
            who = names[(a + p) % len(names)]
            where = names[(a + p + 3) % len(names)]
            context = f"{filler} . the {who} ran to the {where} . {filler} ."
            qas = [
                {
                    "id": f"a{a}p{p}q0",
                    "question": "who ran ?",
                    "answers": [
                        {"text": who, "answer_start": context.index(f"the {who}") + 4},
                        {"text": f"the {who}", "answer_start": context.index(f"the {who}")},
                    ],
                },
                {
                    "id": f"a{a}p{p}q1",
                    "question": " where did it run ?",
                    "answers": [{"text": where, "answer_start": context.index(f"the {where}") + 4}],
                },
            ]
            paragraphs.append({"context": context, "qas": qas})
        data.append({"title": f"Article_{a}", "paragraphs": paragraphs})
    return data


def write_squad_json(path: Path, articles: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"version": "1.1", "data": articles}))
    return path


def wikitext_lines(n_lines: int, seed: int = 0) -> str:
    """Raw-WikiText-like text: headings, blank lines and sentences over ``WORDS``."""
    g = torch.Generator().manual_seed(seed)
    out = [" "]
    for i in range(n_lines):
        if i % 5 == 0:
            out.append(f" = {WORDS[i % 12]} {WORDS[(i + 3) % 12]} = ")
            out.append(" ")
        out.append(" " + " ".join(WORDS[j] for j in torch.randint(0, 40, (12,), generator=g).tolist()) + " . ")
    return "\n".join(out) + "\n"


#: The quick training options of the tiny IMP runs (``tests/experiments``, ``tests/training``, the
#: v0_1 fixture): one epoch of 4 steps, batch 8, lr 1e-3, CPU, sequences of 16 tokens.
IMP_TRAIN_ARGS = (
    "--num_train_epochs 1 --per_device_train_batch_size 8 --learning_rate 1e-3 --use_cpu true --disable_tqdm true --max_seq_length 16"
).split()

IMP_WORDS = "the cat dog sat on a mat big small red blue ran fast slow home is not was".split()


def write_imp_inputs(root: Path) -> tuple[Path, Path]:
    """``root/ckpt`` (a bare tiny ``BertModel``, seed 0, vocabulary ``SPECIALS + IMP_WORDS``) and
    ``root/glue/RTE/{train,dev}.tsv`` (32 / 16 rows, seed 0): the inputs of ``tests/test_imp.py``
    and of the committed fixture ``tests/fixtures/v0_1_run`` (made from ``ckpt`` and ``glue``
    given as relative paths, so its run hash is reproducible from any directory)."""
    ckpt = root / "ckpt"
    ckpt.mkdir(parents=True, exist_ok=True)
    vocab = [*SPECIALS, *IMP_WORDS]
    (ckpt / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizerFast(vocab=str(ckpt / "vocab.txt")).save_pretrained(ckpt)
    torch.manual_seed(0)
    BertModel(tiny_config(vocab_size=len(vocab))).save_pretrained(ckpt)
    glue = root / "glue"
    (glue / "RTE").mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(0)

    def rows(n):
        out = ["index\tsentence1\tsentence2\tlabel"]
        for i in range(n):
            a = " ".join(IMP_WORDS[j] for j in torch.randint(0, len(IMP_WORDS), (6,), generator=g).tolist())
            b = " ".join(IMP_WORDS[j] for j in torch.randint(0, len(IMP_WORDS), (4,), generator=g).tolist())
            label = "entailment" if "cat" in a else "not_entailment"
            out.append(f'{i}\t{a}\t"{b}\t{label}')  # unbalanced quote, as in the real files
        return "\n".join(out) + "\n"

    (glue / "RTE" / "train.tsv").write_text(rows(32))
    (glue / "RTE" / "dev.tsv").write_text(rows(16))
    return ckpt, glue
