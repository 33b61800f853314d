"""The fused CPU mask kernel (bert_tickets.training.kernels): bitwise equal to eager mul_, and its fallbacks."""

import logging
import os
import shutil

import pytest
import torch
from test_callback import _args, _data, _model_and_ticket
from transformers import Trainer

from bert_tickets import TicketCallback, fix_loss_scaling
from bert_tickets.training import kernels

# torch.utils.cpp_extension compiles with $CXX, default c++.
HAVE_COMPILER = shutil.which(os.environ.get("CXX", "c++")) is not None


@pytest.fixture
def fresh_kernel_state(monkeypatch):
    """Forget the process-wide load attempt for the duration of a test (restored afterwards)."""
    monkeypatch.setattr(kernels, "_state", "untried")
    monkeypatch.setattr(kernels, "_extension", None)


def _case(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, generator=g)
    x[::7] = float("nan")
    x[1::11] = float("inf")
    x[2::13] = -float("inf")
    mask = (torch.rand(n, generator=g) > 0.5).view(torch.uint8)
    return x, mask


def _bits(t):
    return t.contiguous().view(torch.int32)


@pytest.mark.skipif(not HAVE_COMPILER, reason="no C++ compiler on PATH: the fused kernel cannot be built here")
@pytest.mark.parametrize("n", [1, 15, 16, 17, 63, 65535, 65536, 65537, 300_007])
def test_fused_kernel_is_bitwise_equal_to_eager_mul(n):
    assert kernels.load_cpu_kernel() is not None, "a C++ compiler is on PATH but the kernel did not build"
    x, mask = _case(n, seed=n)
    expected = x.clone().mul_(mask)  # eager reference: NaN*0 = NaN, inf*0 = NaN, -x*0 = -0.0
    got = x.clone()
    assert kernels.kernel_applies(got, mask)
    out = kernels.mask_mul_(got, mask)
    assert out is got
    assert torch.equal(_bits(got), _bits(expected))
    assert int((got[mask == 0] != 0).sum()) == int(torch.isnan(x[mask == 0]).sum() + torch.isinf(x[mask == 0]).sum())


@pytest.mark.skipif(not HAVE_COMPILER, reason="no C++ compiler on PATH: the fused kernel cannot be built here")
def test_fused_kernel_on_2d_weights_matches_eager():
    x = torch.randn(37, 53)
    mask = (torch.rand(37, 53) > 0.3).view(torch.uint8)
    got = kernels.mask_mul_(x.clone(), mask)
    assert torch.equal(_bits(got), _bits(x * mask))


@pytest.mark.parametrize(
    "make",
    [
        lambda: (torch.randn(8, 6).t(), (torch.rand(6, 8) > 0.5).view(torch.uint8)),  # non-contiguous x
        lambda: (torch.randn(6, 8, dtype=torch.float64), (torch.rand(6, 8) > 0.5).view(torch.uint8)),  # float64
        lambda: (torch.randn(6, 8, dtype=torch.bfloat16), (torch.rand(6, 8) > 0.5).view(torch.uint8)),  # bf16
        lambda: (torch.randn(6, 8), (torch.rand(8) > 0.5).view(torch.uint8)),  # broadcast mask
    ],
)
def test_other_layouts_use_eager_and_give_the_same_result(make):
    x, mask = make()
    assert not kernels.kernel_applies(x, mask)
    expected = x * mask
    got = kernels.mask_mul_(x.clone(), mask)
    assert torch.equal(got, expected)


def test_env_switch_disables_the_build(monkeypatch, fresh_kernel_state):
    monkeypatch.setenv(kernels.ENV_SWITCH, "0")

    def boom(*a, **k):  # pragma: no cover - must not be called
        raise AssertionError("build attempted although disabled")

    monkeypatch.setattr("torch.utils.cpp_extension.load_inline", boom)
    assert kernels.load_cpu_kernel() is None
    assert kernels._state == "disabled"
    x, mask = _case(1000)
    assert torch.equal(_bits(kernels.mask_mul_(x.clone(), mask)), _bits(x.clone().mul_(mask)))


def test_failed_build_falls_back_with_one_warning(monkeypatch, fresh_kernel_state, caplog):
    monkeypatch.delenv(kernels.ENV_SWITCH, raising=False)
    calls = []

    def failing_build(*a, **k):
        calls.append(1)
        raise RuntimeError("Ninja is required to load C++ extensions")

    monkeypatch.setattr("torch.utils.cpp_extension.load_inline", failing_build)
    x, mask = _case(5000)
    with caplog.at_level(logging.WARNING, logger="bert_tickets.training.kernels"):
        got1 = kernels.mask_mul_(x.clone(), mask)
        got2 = kernels.mask_mul_(x.clone(), mask)
    assert len(calls) == 1  # tried once per process
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "Ninja is required" in warnings[0].getMessage()
    ref = _bits(x.clone().mul_(mask))
    assert torch.equal(_bits(got1), ref) and torch.equal(_bits(got2), ref)


def _load_in_thread():
    """``load_cpu_kernel`` in a thread, joined with a limit: the old code waited forever here."""
    import threading

    out = {}
    thread = threading.Thread(target=lambda: out.setdefault("ext", kernels.load_cpu_kernel()), daemon=True)
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive(), "load_cpu_kernel hung"
    return out["ext"]


def test_a_stale_torch_build_lock_falls_back_with_a_warning_naming_it(monkeypatch, fresh_kernel_state, caplog, tmp_path):
    """A build killed mid-way leaves torch's ``lock`` file; no live builder holds our lock, so
    the load falls back at once instead of waiting for the file forever."""
    from torch.utils.cpp_extension import _get_build_directory

    monkeypatch.delenv(kernels.ENV_SWITCH, raising=False)
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    build_dir = _get_build_directory(kernels.EXTENSION_NAME, False)
    stale = os.path.join(build_dir, "lock")
    open(stale, "w").close()
    monkeypatch.setattr("torch.utils.cpp_extension.load_inline", lambda *a, **k: pytest.fail("must not build past a stale lock"))
    with caplog.at_level(logging.WARNING, logger="bert_tickets.training.kernels"):
        assert _load_in_thread() is None
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and stale in warnings[0] and "Delete that file" in warnings[0]
    x, mask = _case(300)
    assert torch.equal(_bits(kernels.mask_mul_(x.clone(), mask)), _bits(x.clone().mul_(mask)))


def test_a_live_builder_is_waited_for_only_until_the_timeout(monkeypatch, fresh_kernel_state, caplog, tmp_path):
    from filelock import FileLock
    from torch.utils.cpp_extension import _get_build_directory

    monkeypatch.delenv(kernels.ENV_SWITCH, raising=False)
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    monkeypatch.setenv(kernels.ENV_BUILD_TIMEOUT, "0.5")
    build_dir = _get_build_directory(kernels.EXTENSION_NAME, False)
    monkeypatch.setattr("torch.utils.cpp_extension.load_inline", lambda *a, **k: pytest.fail("must not build while another builds"))
    with FileLock(os.path.join(build_dir, "bert_tickets_build.lock")):  # "another process" building
        with caplog.at_level(logging.WARNING, logger="bert_tickets.training.kernels"):
            assert _load_in_thread() is None
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "another process has been building it" in warnings[0] and kernels.ENV_BUILD_TIMEOUT in warnings[0]


def test_the_extension_name_separates_installations(monkeypatch):
    """Another torch install path or compiler is another build (another name)."""
    name = kernels._build_key()
    monkeypatch.setenv("CXX", "/opt/other/g++-13")
    assert kernels._build_key() != name
    monkeypatch.delenv("CXX")
    monkeypatch.setattr(torch, "__file__", "/elsewhere/venv/lib/python3.11/site-packages/torch/__init__.py")
    assert kernels._build_key() != name
    assert kernels.EXTENSION_NAME.endswith(name)


def test_callback_with_and_without_kernel_train_identically(config, tmp_path):
    """The callback's result must not depend on which multiply it uses (kernel vs eager mul_)."""
    results = []
    for cpu_kernel in (True, False):
        model, ticket = _model_and_ticket(config)
        cb = TicketCallback(ticket, rezero="every_step", cpu_kernel=cpu_kernel)
        Trainer(model=fix_loss_scaling(model), args=_args(tmp_path / str(cpu_kernel)), train_dataset=_data(), callbacks=[cb]).train()
        assert ticket.count_nonzero_pruned(model) == 0
        results.append({n: p.detach().clone() for n, p in model.named_parameters()})
    assert results[0].keys() == results[1].keys()
    for n in results[0]:
        assert torch.equal(results[0][n], results[1][n]), n
