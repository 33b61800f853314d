"""Shared fixtures: tiny BERT configs built in-process (nothing is downloaded)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import BertConfig

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def tiny_config(**overrides) -> BertConfig:
    """A 2-layer, hidden-32 BERT config: prunable set = 2*(4*32*32 + 2*32*64) + 32*32 = 17408."""
    kw = dict(
        vocab_size=99,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    kw.update(overrides)
    return BertConfig(**kw)


TINY_PRUNABLE = 2 * (4 * 32 * 32 + 2 * 32 * 64) + 32 * 32


@pytest.fixture
def config() -> BertConfig:
    return tiny_config()


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def shared_path(*parts: str) -> Path:
    """Path under ../shared, skipping the test when it is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not available (real inputs live in ../shared)")
    return path
