"""Tickets as Hub artifacts: save/push/from_pretrained, model cards, integrity, CLI push.

Nothing here reaches the network. Two boundaries are replaced, each at the narrowest point:

* **Uploads** — at the ``huggingface_hub.HfApi`` boundary: :class:`FakeHfApi` stands in for the
  three ``HfApi`` methods bert-tickets calls (``create_repo``, ``create_branch``,
  ``upload_folder``) and records each call with a copy of the uploaded folder's files (the
  commit's operations: path in repo -> bytes). Everything above it (choosing levels, branches,
  writing the folder, rendering the card) is the real code. Replaced because a real upload needs
  the Hub and a token.
* **Downloads** — at the network: the files captured from a fake push are written into a
  Hugging Face cache directory laid out exactly as ``huggingface_hub`` writes it
  (``models--org--name/{blobs/<sha256>, snapshots/<commit>/<file> -> ../../blobs/<sha256>,
  refs/<branch>}``), and ``huggingface_hub.constants.HF_HUB_OFFLINE`` is set to ``True`` (what
  ``HF_HUB_OFFLINE=1`` sets when ``huggingface_hub`` is imported; it is already imported by
  transformers when the tests start, so the constant itself is patched — ``is_offline_mode()``
  reads it on every call and any HTTP request raises). ``TicketMask.from_pretrained(repo_id)``
  then runs the real ``hf_hub_download`` code path and resolves branches through ``refs/``.
  One test also runs a fresh interpreter with ``HF_HUB_OFFLINE=1`` and ``HF_HUB_CACHE`` set in
  the environment before anything is imported.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch
from huggingface_hub import ModelCard
from transformers import BertForSequenceClassification

from bert_tickets import TicketMask, TicketMetadata, load_ticket, prune_ticket
from bert_tickets.cli import main as cli_main
from bert_tickets.publish import branch_name, card_template_path, plan_levels, push_run, render_model_card, ticket_from_run
from bert_tickets.results import read_run
from bert_tickets.ticket import CONFIG_FILE, MASK_FILE, README_FILE, BaseModelMismatchWarning, TicketNotFoundError, check_base_model

from conftest import tiny_config

REPO = "alice/tiny-rte-ticket"
BASE_REPO = "org/tiny-bert"
ROOT = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------------------ helpers
class FakeHfApi:
    """Stand-in for ``huggingface_hub.HfApi`` at the boundary bert-tickets uses (see module doc)."""

    def __init__(self, *args, **kwargs):
        self.calls: list[tuple] = []
        self.uploads: list[dict] = []

    def create_repo(self, repo_id, *, private=None, exist_ok=False, token=None, **kw):
        self.calls.append(("create_repo", repo_id, {"private": private, "exist_ok": exist_ok}))
        return f"https://huggingface.co/{repo_id}"

    def create_branch(self, repo_id, *, branch, exist_ok=False, token=None, **kw):
        self.calls.append(("create_branch", repo_id, {"branch": branch, "exist_ok": exist_ok}))

    def upload_folder(self, *, repo_id, folder_path, revision=None, commit_message=None, token=None, create_pr=None, **kw):
        files = {p.relative_to(folder_path).as_posix(): p.read_bytes() for p in Path(folder_path).rglob("*") if p.is_file()}
        commit = hashlib.sha1(
            repr(sorted((k, hashlib.sha256(v).hexdigest()) for k, v in files.items())).encode() + str(revision).encode()
        ).hexdigest()
        self.calls.append(("upload_folder", repo_id, {"revision": revision, "commit_message": commit_message}))
        self.uploads.append({"repo_id": repo_id, "revision": revision or "main", "files": files, "commit": commit})
        return commit


def populate_hf_cache(cache_dir: Path, repo_id: str, files: dict[str, bytes], revision: str = "main", commit: str | None = None) -> str:
    """Write ``files`` into ``cache_dir`` in huggingface_hub's cache layout; ``refs/<revision>``
    points to the snapshot ``commit``. Returns the commit sha."""
    commit = commit or hashlib.sha1(repr(sorted(files)).encode() + revision.encode() + os.urandom(8)).hexdigest()
    repo_dir = cache_dir / ("models--" + repo_id.replace("/", "--"))
    for name, data in files.items():
        blob = repo_dir / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = repo_dir / "snapshots" / commit / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs" / revision).write_text(commit)
    return commit


def cache_from_uploads(cache_dir: Path, api: FakeHfApi) -> dict[str, str]:
    """Replay every captured upload into the cache; revision -> commit."""
    return {u["revision"]: populate_hf_cache(cache_dir, u["repo_id"], u["files"], u["revision"], u["commit"]) for u in api.uploads}


@pytest.fixture
def offline(monkeypatch):
    """HF_HUB_OFFLINE for this test: the constant huggingface_hub reads at every request."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


def make_run(root: Path, config, base_model: str = BASE_REPO, metrics=(0.66, 0.665, 0.64), schedule=(0.0, 0.1, 0.2)) -> Path:
    """A run directory as ``bert-tickets find`` writes it (level_NN/ticket, metrics.json, run_config.json)."""
    run = root / "run"
    run.mkdir(parents=True)
    model = BertForSequenceClassification(config)
    meta = TicketMetadata(base_model=base_model, base_model_revision="main", task="rte", schedule="linear")
    ticket = TicketMask.dense(model, metadata=meta)
    hparams = {
        "model": {"model_name_or_path": base_model, "revision": "main", "cache_dir": None},
        "data": {"task": "rte", "data_dir": "../shared/data/glue", "max_seq_length": None},
        "imp": {
            "schedule": "linear",
            "prune_step": 0.1,
            "pruning_method": "magnitude",
            "rewind_step": 0,
            "tolerance": 0.01,
            "keep_trained_head": False,
            "exclude": None,
        },
        "training": {"learning_rate": 2e-5, "per_device_train_batch_size": 32, "num_train_epochs": 3.0, "seed": 42},
    }
    (run / "run_config.json").write_text(json.dumps({"hash": "1234abcd5678", "hyperparameters": hparams, "schedule": list(schedule)}))
    for level, (target, value) in enumerate(zip(schedule, metrics)):
        if level:
            ticket = prune_ticket(ticket, model, target)
        ticket.metadata.extra = {"metrics": {"accuracy": value}, "accuracy": value}
        ticket.save_pretrained(run / f"level_{level:02d}" / "ticket")
        result = {
            "level": level,
            "target_sparsity": target,
            "sparsity": ticket.sparsity,
            "num_pruned": ticket.num_pruned,
            "num_prunable": ticket.num_prunable,
            "metric": "accuracy",
            "mean": value,
            "std": None,
            "per_seed": {"42": value},
        }
        (run / f"level_{level:02d}" / "metrics.json").write_text(json.dumps({"result": result, "per_seed": {"42": {"accuracy": value}}}))
    return run


def params_of(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def assert_unchanged(model, before):
    after = dict(model.named_parameters())
    assert all(torch.equal(after[n], t) for n, t in before.items())


def same_masks(a: TicketMask, b: TicketMask) -> bool:
    return set(a.masks) == set(b.masks) and all(torch.equal(a.masks[n], b.masks[n]) for n in a.masks)


# ------------------------------------------------------------------------------ config and local files
def test_config_carries_issue_fields_and_local_round_trip_is_bit_exact(config, tmp_path):
    run = make_run(tmp_path, config)
    ticket = ticket_from_run(run, 2)
    ticket.save_pretrained(tmp_path / "t")
    cfg = json.loads((tmp_path / "t" / CONFIG_FILE).read_text())
    for key in (
        "format",
        "format_version",
        "base_model",
        "base_model_revision",
        "shapes",
        "task",
        "level",
        "target_sparsity",
        "sparsity",
        "per_tensor_sparsity",
        "schedule",
        "rewind_step",
        "library_versions",
        "mask_sha256",
    ):
        assert key in cfg, key
    assert cfg["level"] == 2 and cfg["target_sparsity"] == 0.2 and cfg["task"] == "rte"
    assert cfg["library_versions"]["torch"] == torch.__version__
    assert cfg["mask_sha256"] == hashlib.sha256((tmp_path / "t" / MASK_FILE).read_bytes()).hexdigest()
    ev = cfg["extra"]["evaluation"]
    assert (ev["metric"], ev["value"], ev["dense_value"], ev["matching"]) == ("accuracy", 0.64, 0.66, False)
    assert ev["delta"] == pytest.approx(-0.02)
    loaded = TicketMask.from_pretrained(tmp_path / "t")
    assert same_masks(loaded, ticket) and loaded.metadata == ticket.metadata


def test_read_run_matching_and_plan_levels(config, tmp_path):
    run = read_run(make_run(tmp_path, config))
    assert [run.levels[lv]["matching"] for lv in (0, 1, 2)] == [True, True, False]
    assert run.best_matching_level() == 1
    assert plan_levels(run, all_levels=True) == ({1: "sparsity-10", 2: "sparsity-20"}, 1)
    assert plan_levels(run, level=2) == ({2: "sparsity-20"}, 2)
    assert plan_levels(run) == ({1: "sparsity-10"}, 1)
    with pytest.raises(ValueError, match="level 3 is not complete"):
        plan_levels(run, level=3)
    with pytest.raises(ValueError, match="not both"):
        plan_levels(run, level=1, all_levels=True)


def test_no_matching_level_needs_an_explicit_choice(config, tmp_path):
    run = read_run(make_run(tmp_path, config, metrics=(0.7, 0.6, 0.5)))
    with pytest.raises(ValueError, match="no pruned level is matching"):
        plan_levels(run)
    assert plan_levels(run, all_levels=True)[1] == 2  # main: the highest level when none is matching


def test_branch_names():
    assert [branch_name(s) for s in (0.6, 0.1, 0.271, 0.40951, 0.0, 0.9)] == [
        "sparsity-60",
        "sparsity-10",
        "sparsity-27.1",
        "sparsity-40.95",
        "sparsity-0",
        "sparsity-90",
    ]
    with pytest.raises(ValueError):
        branch_name(1.0)


# ------------------------------------------------------------------------------ push at the HfApi boundary
def test_push_run_all_levels_uploads_branches_then_main(config, tmp_path):
    run = make_run(tmp_path, config)
    api = FakeHfApi()
    pushed = push_run(run, REPO, all_levels=True, private=True, api=api)
    assert [c[0] for c in api.calls] == ["create_repo", "create_branch", "create_branch", "upload_folder", "upload_folder", "upload_folder"]
    assert api.calls[0][2] == {"private": True, "exist_ok": True}
    assert [c[2]["branch"] for c in api.calls if c[0] == "create_branch"] == ["sparsity-10", "sparsity-20"]
    assert [u["revision"] for u in api.uploads] == ["sparsity-10", "sparsity-20", "main"]
    assert [(p.level, p.revision) for p in pushed] == [(1, "sparsity-10"), (2, "sparsity-20"), (1, "main")]
    for upload, level in zip(api.uploads, (1, 2, 1)):
        assert set(upload["files"]) == {MASK_FILE, CONFIG_FILE, README_FILE}
        folder = tmp_path / "captured" / upload["revision"]
        folder.mkdir(parents=True)
        for name, data in upload["files"].items():
            (folder / name).write_bytes(data)
        sent = TicketMask.from_pretrained(folder)
        assert same_masks(sent, TicketMask.from_pretrained(run / f"level_{level:02d}" / "ticket"))
        assert sent.metadata.level == level and sent.metadata.extra["evaluation"]["dense_value"] == 0.66


def test_model_card_parses_and_carries_metadata(config, tmp_path):
    api = FakeHfApi()
    push_run(make_run(tmp_path, config), REPO, all_levels=True, api=api)
    card = ModelCard(api.uploads[-1]["files"][README_FILE].decode())
    data = card.data
    assert data.base_model == BASE_REPO and data.library_name == "bert-tickets"
    assert {"lottery-ticket", "pruning"} <= set(data.tags)
    assert data.datasets == ["nyu-mll/glue"]
    results = {r.metric_name: r for r in data.eval_results}
    ticket_result = next(r for name, r in results.items() if "ticket" in name)
    dense_result = next(r for name, r in results.items() if "dense" in name)
    assert (ticket_result.metric_type, ticket_result.metric_value) == ("accuracy", 0.665)
    assert (dense_result.metric_type, dense_result.metric_value) == ("accuracy", 0.66)
    assert ticket_result.dataset_config == "rte" and ticket_result.dataset_split == "validation"
    text = card.text
    assert "| **1** |" in text and "`sparsity-20`" in text  # the run's sparsity table, this level in bold
    assert "bert-tickets find" in text and "--learning_rate 2e-05" in text and "--target_sparsity 0.2" in text
    assert f'load_ticket("{REPO}"' in text and "Chen" in text and "15834--15846" in text


def test_push_to_hub_method_creates_branch_and_default_card(config, tmp_path):
    model = BertForSequenceClassification(config)
    ticket = prune_ticket(TicketMask.dense(model, metadata=TicketMetadata(base_model=BASE_REPO, task="rte")), model, 0.6)
    api = FakeHfApi()
    ticket.push_to_hub(REPO, revision="sparsity-60", api=api)
    assert [c[0] for c in api.calls] == ["create_repo", "create_branch", "upload_folder"]
    upload = api.uploads[0]
    assert upload["revision"] == "sparsity-60"
    card = ModelCard(upload["files"][README_FILE].decode())
    assert card.data.base_model == BASE_REPO and "lottery-ticket" in card.data.tags
    assert 'revision="sparsity-60"' in card.text


def test_render_without_run_or_hub_base_model(config):
    model = BertForSequenceClassification(config)
    ticket = TicketMask.dense(model, metadata=TicketMetadata(base_model="../shared/models/x"))
    card = ModelCard(str(render_model_card(ticket)))
    assert card.data.base_model is None and card.data.library_name == "bert-tickets"


def test_push_refuses_local_base_model_without_hub_id(config, tmp_path):
    run = make_run(tmp_path, config, base_model="../shared/models/all-MiniLM-L6-v2")
    api = FakeHfApi()
    with pytest.raises(ValueError, match="--base-model-id"):
        push_run(run, REPO, level=1, api=api)
    assert api.calls == []
    push_run(run, REPO, level=1, api=api, base_model_id="sentence-transformers/all-MiniLM-L6-v2")
    cfg = json.loads(api.uploads[-1]["files"][CONFIG_FILE])
    assert cfg["base_model"] == "sentence-transformers/all-MiniLM-L6-v2" and cfg["base_model_revision"] is None
    assert cfg["extra"]["base_model_source"]["base_model"] == "../shared/models/all-MiniLM-L6-v2"


def test_cli_push(config, tmp_path, monkeypatch, capsys):
    import huggingface_hub

    run = make_run(tmp_path, config)
    apis: list[FakeHfApi] = []
    monkeypatch.setattr(huggingface_hub, "HfApi", lambda *a, **k: apis.append(FakeHfApi()) or apis[-1])
    assert cli_main(["push", str(run), "--repo-id", REPO, "--level", "2", "--private"]) == 0
    assert [u["revision"] for u in apis[0].uploads] == ["sparsity-20", "main"]
    assert apis[0].calls[0][2]["private"] is True
    assert f"{REPO}@main: level 2" in capsys.readouterr().out
    assert cli_main(["push", str(run), "--repo-id", REPO, "--level", "7"]) == 2
    err = capsys.readouterr().err
    assert "level 7 is not complete" in err and err.count("\n") == 1
    assert cli_main(["push", str(run), "--repo-id", REPO, "--level", "1", "--all-levels"]) == 2
    assert cli_main(["push", str(tmp_path / "nowhere"), "--repo-id", REPO]) == 2
    assert "not a bert-tickets run directory" in capsys.readouterr().err
    assert cli_main(["push", str(run), "--repo-id", REPO, "--all-levels", "--save-dir", str(tmp_path / "out")]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["main", "sparsity-10", "sparsity-20"]
    assert len(apis) == 1  # --save-dir never built an HfApi


# ------------------------------------------------------------------------------ from_pretrained by repo id (offline cache)
def test_repo_id_from_offline_cache_reaches_every_level(config, tmp_path, offline, monkeypatch):
    import huggingface_hub

    downloads = []
    real = huggingface_hub.hf_hub_download
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda *a, **k: downloads.append((a, k)) or real(*a, **k))
    run = make_run(tmp_path, config)
    api = FakeHfApi()
    push_run(run, REPO, all_levels=True, api=api)
    cache = tmp_path / "hf-cache"
    commits = cache_from_uploads(cache, api)
    level = {lv: TicketMask.from_pretrained(run / f"level_{lv:02d}" / "ticket") for lv in (1, 2)}
    for revision, lv in (("sparsity-10", 1), ("sparsity-20", 2), (None, 1), ("main", 1), (commits["sparsity-20"], 2)):
        loaded = TicketMask.from_pretrained(REPO, revision=revision, cache_dir=cache)
        assert same_masks(loaded, level[lv]) and loaded.metadata.level == lv
    assert len(downloads) == 2 * 5 and {a[1] for a, _ in downloads} == {CONFIG_FILE, MASK_FILE}
    with pytest.raises(TicketNotFoundError, match="sparsity-99") as err:
        TicketMask.from_pretrained(REPO, revision="sparsity-99", cache_dir=cache)
    assert "\n" not in str(err.value)
    with pytest.raises(TicketNotFoundError, match="cache"):
        TicketMask.from_pretrained("alice/never-pushed", cache_dir=cache)


def test_repo_id_with_local_files_only_and_subfolder(config, tmp_path):
    model = BertForSequenceClassification(config)
    ticket = prune_ticket(TicketMask.dense(model), model, 0.5)
    ticket.save_pretrained(tmp_path / "t")
    files = {f"tickets/rte/{p.name}": p.read_bytes() for p in (tmp_path / "t").iterdir()}
    populate_hf_cache(tmp_path / "cache", REPO, files)
    loaded = TicketMask.from_pretrained(REPO, subfolder="tickets/rte", cache_dir=tmp_path / "cache", local_files_only=True)
    assert same_masks(loaded, ticket)
    with pytest.raises(TicketNotFoundError):
        TicketMask.from_pretrained(REPO, cache_dir=tmp_path / "cache", local_files_only=True)  # no files at the root


def test_env_hf_hub_offline_set_before_import(config, tmp_path):
    """HF_HUB_OFFLINE=1 and HF_HUB_CACHE in the environment of a fresh interpreter."""
    run = make_run(tmp_path, config)
    api = FakeHfApi()
    push_run(run, REPO, all_levels=True, api=api)
    cache_from_uploads(tmp_path / "hub", api)
    expected = TicketMask.from_pretrained(run / "level_02" / "ticket")
    code = (
        "import hashlib, numpy as np\n"
        "from bert_tickets import TicketMask\n"
        f"t = TicketMask.from_pretrained({REPO!r}, revision='sparsity-20')\n"
        "print(t.num_pruned, hashlib.sha256(b''.join(np.packbits(t.masks[n].numpy()).tobytes() for n in sorted(t.masks))).hexdigest())\n"
    )
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_CACHE": str(tmp_path / "hub"),
        "HF_HOME": str(tmp_path / "home"),
        "OMP_NUM_THREADS": "1",
    }
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    digest = hashlib.sha256(b"".join(np.packbits(expected.masks[n].numpy()).tobytes() for n in sorted(expected.masks))).hexdigest()
    assert out.stdout.split() == [str(expected.num_pruned), digest]


def test_load_ticket_loads_base_from_cache_and_applies(config, tmp_path, offline):
    base = BertForSequenceClassification(config)
    base.save_pretrained(tmp_path / "base")
    cache = tmp_path / "cache"
    populate_hf_cache(cache, BASE_REPO, {p.name: p.read_bytes() for p in (tmp_path / "base").iterdir()})
    run = make_run(tmp_path, config)
    api = FakeHfApi()
    push_run(run, REPO, all_levels=True, api=api)
    cache_from_uploads(cache, api)
    model, ticket = load_ticket(REPO, BertForSequenceClassification, revision="sparsity-20", cache_dir=cache, return_ticket=True)
    assert ticket.metadata.level == 2 and ticket.count_nonzero_pruned(model) == 0
    theta0 = dict(base.bert.named_parameters())
    params = dict(model.bert.named_parameters())
    for name, mask in ticket.masks.items():
        assert torch.equal(params[name][mask], theta0[name][mask])  # survivors are θ0, bit for bit
    # a base model given explicitly with another name: warning, or error with strict
    (tmp_path / "other-bert").mkdir()
    base.save_pretrained(tmp_path / "other-bert")
    with pytest.warns(BaseModelMismatchWarning, match="other-bert"):
        load_ticket(REPO, BertForSequenceClassification, cache_dir=cache, base_model=tmp_path / "other-bert")
    with pytest.raises(ValueError, match="strict"):
        load_ticket(REPO, BertForSequenceClassification, cache_dir=cache, base_model=tmp_path / "other-bert", strict=True)
    # a local copy named like the repo is the same base model: no warning
    base.save_pretrained(tmp_path / "copies" / "tiny-bert")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", BaseModelMismatchWarning)
        load_ticket(REPO, BertForSequenceClassification, cache_dir=cache, base_model=tmp_path / "copies" / "tiny-bert")


def test_check_base_model_names_and_revisions(config):
    model = BertForSequenceClassification(config)
    ticket = TicketMask.dense(model, metadata=TicketMetadata(base_model="google-bert/bert-base-uncased", base_model_revision="a" * 40))
    assert check_base_model(ticket, model)  # built from a config: nothing to compare
    model.config._name_or_path = "bert-base-uncased"
    model.config._commit_hash = "a" * 40
    assert check_base_model(ticket, model)
    model.config._commit_hash = "b" * 40
    with pytest.warns(BaseModelMismatchWarning, match="commit"):
        assert not check_base_model(ticket, model)
    model.config._name_or_path = "bert-large-uncased"
    before = params_of(model)
    with pytest.raises(ValueError, match="bert-large-uncased"):
        ticket.apply(model, strict=True)
    assert_unchanged(model, before)
    with pytest.warns(BaseModelMismatchWarning):
        ticket.apply(model)


# ------------------------------------------------------------------------------ integrity
def _saved(config, tmp_path, name="t", sparsity=0.6):
    model = BertForSequenceClassification(config)
    ticket = prune_ticket(TicketMask.dense(model), model, sparsity)
    ticket.save_pretrained(tmp_path / name)
    return ticket, tmp_path / name


def test_corrupted_files_give_one_line_errors(config, tmp_path):
    _, folder = _saved(config, tmp_path)
    data = (folder / MASK_FILE).read_bytes()
    cases = {
        "truncated": data[: len(data) - 100],
        "bit flip": data[:-1] + bytes([data[-1] ^ 0x01]),  # structurally valid: only the sha256 catches it
    }
    for what, corrupt in cases.items():
        (folder / MASK_FILE).write_bytes(corrupt)
        with pytest.raises(ValueError, match="corrupted or truncated") as err:
            TicketMask.from_pretrained(folder)
        assert "\n" not in str(err.value), what
    cfg = json.loads((folder / CONFIG_FILE).read_text())
    (folder / MASK_FILE).write_bytes(data)
    for key, value, match in (("format_version", 3, "version 3"), ("format", "something-else", "unsupported"), ("shapes", {}, "shapes")):
        (folder / CONFIG_FILE).write_text(json.dumps({**cfg, key: value}))
        with pytest.raises(ValueError, match=match) as err:
            TicketMask.from_pretrained(folder)
        assert "\n" not in str(err.value)
    (folder / CONFIG_FILE).write_text(json.dumps(cfg)[:-20])
    with pytest.raises(ValueError, match="not valid JSON"):
        TicketMask.from_pretrained(folder)


def test_a_pickle_is_never_unpickled(config, tmp_path):
    _, folder = _saved(config, tmp_path)
    marker = tmp_path / "unpickled"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    (folder / MASK_FILE).write_bytes(pickle.dumps({"encoder.layer.0.attention.self.query.weight": Payload()}))
    cfg = json.loads((folder / CONFIG_FILE).read_text())
    cfg.pop("mask_sha256")  # get past the checksum: only the format check stands in the way
    (folder / CONFIG_FILE).write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="corrupted or truncated"):
        TicketMask.from_pretrained(folder)
    assert not marker.exists()


def test_mask_for_another_size_or_architecture_leaves_model_unchanged(config, tmp_path):
    other_size, _ = _saved(tiny_config(hidden_size=48, intermediate_size=96), tmp_path, "wide")
    other_arch, _ = _saved(tiny_config(num_hidden_layers=3), tmp_path, "deep")
    model = BertForSequenceClassification(config)
    before = params_of(model)
    for ticket, match in ((other_size, "shape"), (other_arch, "encoder.layer.2")):
        with pytest.raises(ValueError, match=match) as err:
            ticket.apply(model)
        assert "\n" not in str(err.value)
        assert_unchanged(model, before)


# ------------------------------------------------------------------------------ packaging
def test_card_template_ships_as_package_data():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "bert_tickets.model_cards" in project["packages"]
    folder = ROOT / project["package-dir"]["bert_tickets.model_cards"]
    assert "*.md" in project["package-data"]["bert_tickets.model_cards"]
    assert (folder / "ticket_card.md").is_file() and (folder / "__init__.py").is_file()
    assert card_template_path().read_text() == (folder / "ticket_card.md").read_text()


# ------------------------------------------------------------------------------ real checkpoint (../shared)
@pytest.mark.shared
def test_real_checkpoint_ticket_pushed_and_loaded_back(tmp_path, offline):
    from conftest import shared_path

    local = shared_path("models", "all-MiniLM-L6-v2")
    torch.manual_seed(0)
    model = BertForSequenceClassification.from_pretrained(local, num_labels=2)
    meta = TicketMetadata(base_model="sentence-transformers/all-MiniLM-L6-v2", task="rte", schedule="linear")
    ticket = prune_ticket(TicketMask.dense(model, metadata=meta), model, 0.5)
    api = FakeHfApi()
    ticket.push_to_hub(REPO, revision="sparsity-50", api=api)
    cache_from_uploads(tmp_path / "cache", api)
    head = {n: p.detach().clone() for n, p in model.classifier.named_parameters()}
    loaded, by_id = load_ticket(
        REPO,
        BertForSequenceClassification,
        revision="sparsity-50",
        cache_dir=tmp_path / "cache",
        base_model=local,
        num_labels=2,
        return_ticket=True,
    )
    assert same_masks(by_id, ticket)
    with torch.no_grad():
        for n, p in loaded.classifier.named_parameters():
            p.copy_(head[n])  # same (random) task head, so the two models must agree exactly
    ticket.apply(model)
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), loaded.parameters()))
    ids = torch.tensor([[101, 7592, 2088, 102]])
    model.eval(), loaded.eval()
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids).logits, loaded(input_ids=ids).logits)
    size = len(api.uploads[0]["files"][MASK_FILE])
    assert size <= ticket.num_prunable / 8 * 1.01
