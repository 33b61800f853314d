"""Fused in-place multiply by a 0/1 byte mask on CPU: ``x *= mask`` for float32 ``x``.

Why it exists: :class:`~bert_tickets.training.callback.TicketCallback` multiplies every masked gradient
by its mask on every backward pass (85.5M weights in bert-base). On CPU, eager
``x.mul_(mask_uint8)`` first materialises ``mask`` as a float32 temporary (a type-promotion copy
of 4 bytes per weight, freshly page-faulted on each call) and then multiplies: measured inside
real bert-base training steps on 2 cores, 34 ms per step (1.6% of a 2.17 s step), against 20 ms
for a same-dtype float32 mask (which would cost 4 bytes per weight instead of 1) and 12 ms for
this kernel, which converts each mask byte in registers in the same loop (one read of the mask,
one read and one write of ``x``; ``scripts/bench_callback.py`` prints the in-step figures).
On CUDA, eager ``mul_`` already casts in registers, so the kernel is CPU-only.

The kernel is a few lines of C++ built on first use with :func:`torch.utils.cpp_extension.load_inline`
(a C++ compiler and ninja are needed; the build takes ~20 s once per machine and torch caches it
under ``TORCH_EXTENSIONS_DIR``, default ``~/.cache/torch_extensions``). It uses torch's own
thread pool (``at::parallel_for``) and GCC function multi-versioning (AVX-512 / AVX2 / baseline
x86-64 chosen at run time) so the cached build runs on any x86-64 CPU. When it cannot be built,
or when the environment variable ``BERT_TICKETS_CPU_KERNEL=0`` is set, :func:`mask_mul_` falls
back to eager ``mul_`` (same result, slower on CPU) with one logged warning; so it does when
another process has been building it for longer than ``BERT_TICKETS_KERNEL_BUILD_TIMEOUT``
seconds, or when torch's build lock was left behind by a killed build (see :func:`_build_and_load`).
"""

from __future__ import annotations

import logging
import os
import re
import threading

import torch

logger = logging.getLogger(__name__)


def _build_key() -> str:
    """What makes one build of the kernel differ from another on the same machine: the torch
    installation (path and version, so separate virtual environments do not share -- and keep
    rebuilding -- one build directory), the Python ABI, and the C++ compiler torch will call."""
    import hashlib
    import shutil
    import sys
    import sysconfig

    compiler = os.environ.get("CXX", "c++")
    compiler = os.path.realpath(shutil.which(compiler) or compiler)
    parts = (
        os.path.realpath(os.path.dirname(torch.__file__)),
        torch.__version__,
        sys.implementation.cache_tag,
        sysconfig.get_config_var("SOABI"),
        compiler,
    )
    return hashlib.sha256("\0".join(map(str, parts)).encode()).hexdigest()[:10]


#: Name of the compiled extension: bump ``v1`` whenever ``_CPP_SOURCE`` changes. The torch version
#: is spelled out, and :func:`_build_key` hashes the torch install path, the Python ABI and the
#: compiler, because torch's extension cache is keyed by this name (and the Python version) only.
EXTENSION_NAME = "bert_tickets_mask_mul_v1_torch_" + re.sub(r"\W", "_", torch.__version__) + "_" + _build_key()

#: Seconds to wait for another process that is building the kernel before using eager ``mul_``
#: (environment variable; default 120, a build takes ~20 s).
ENV_BUILD_TIMEOUT = "BERT_TICKETS_KERNEL_BUILD_TIMEOUT"

ENV_SWITCH = "BERT_TICKETS_CPU_KERNEL"

_CPP_SOURCE = r"""
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <cstdint>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define BT_TARGET_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define BT_TARGET_CLONES
#endif

// x[i] *= float(m[i]) for m[i] in {0, 1}: exactly the values of eager x.mul_(m), without the
// float temporary that type promotion allocates on CPU.
BT_TARGET_CLONES
static void mul_by_byte_mask(float* __restrict x, const uint8_t* __restrict m, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] *= static_cast<float>(m[i]);
}

void mask_mul_f32_u8_(torch::Tensor x, torch::Tensor m) {
  TORCH_CHECK(x.device().is_cpu() && m.device().is_cpu(), "mask_mul_: CPU tensors expected");
  TORCH_CHECK(x.scalar_type() == at::kFloat && m.scalar_type() == at::kByte,
              "mask_mul_: float32 x and uint8 mask expected");
  TORCH_CHECK(x.is_contiguous() && m.is_contiguous() && x.numel() == m.numel(),
              "mask_mul_: contiguous tensors with the same number of elements expected");
  float* xp = x.data_ptr<float>();
  const uint8_t* mp = m.data_ptr<uint8_t>();
  at::parallel_for(0, x.numel(), 1 << 16, [&](int64_t begin, int64_t end) {
    mul_by_byte_mask(xp + begin, mp + begin, end - begin);
  });
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, module) {
  module.def("mask_mul_f32_u8_", &mask_mul_f32_u8_, "x *= mask in place (float32 x, uint8 0/1 mask, CPU)");
}
"""

_lock = threading.Lock()
_extension = None
_state = "untried"  # "untried" | "loaded" | "disabled" | "failed"


def cpu_kernel_enabled() -> bool:
    """False when ``BERT_TICKETS_CPU_KERNEL`` is set to ``0``/``false``/``no``/``off``."""
    return os.environ.get(ENV_SWITCH, "1").strip().lower() not in ("0", "false", "no", "off")


def load_cpu_kernel():
    """Build (first time on this machine) and load the fused CPU kernel; ``None`` if unavailable.

    Thread-safe; tried once per process. A failed build is logged once as a warning (with the
    reason) and :func:`mask_mul_` then uses eager ``mul_``. Never raises.
    """
    global _extension, _state
    if _state != "untried":
        return _extension
    with _lock:
        if _state != "untried":
            return _extension
        if not cpu_kernel_enabled():
            _state = "disabled"
            logger.info("%s=0: fused CPU mask kernel disabled, using torch mul_", ENV_SWITCH)
            return None
        try:
            _extension = _build_and_load()
            _state = "loaded" if _extension is not None else "failed"
        except Exception as exc:  # no compiler / ninja, read-only cache dir, ...: fall back, never fail training
            _extension, _state = None, "failed"
            reason = str(exc).strip().splitlines()
            logger.warning(
                "fused CPU mask kernel unavailable (%s: %s); using torch mul_ (same result, slower on CPU). "
                "Set %s=0 to skip the build attempt.",
                type(exc).__name__,
                reason[-1] if reason else "",
                ENV_SWITCH,
            )
        return _extension


def _build_and_load():
    """``load_inline`` under our own build lock, so that torch's build lock cannot hang us.

    torch's ``cpp_extension`` marks a build in progress with a plain ``lock`` file in the build
    directory and waits, without a limit, for it to disappear; a process killed mid-build leaves
    it behind and every later load waits forever. Here every builder first takes
    ``bert_tickets_build.lock`` (a ``filelock`` lock, released by the OS when its holder dies):
    waiting for a live builder is limited to ``BERT_TICKETS_KERNEL_BUILD_TIMEOUT`` seconds, and a
    torch ``lock`` file found while we hold our lock has no live builder -- it is stale. Both
    cases return ``None`` after one warning (the stale one names the file to delete).
    """
    from filelock import FileLock, Timeout
    from torch.utils.cpp_extension import _get_build_directory, load_inline

    build_dir = _get_build_directory(EXTENSION_NAME, False)
    torch_lock = os.path.join(build_dir, "lock")
    timeout = float(os.environ.get(ENV_BUILD_TIMEOUT, "120"))
    try:
        with FileLock(os.path.join(build_dir, "bert_tickets_build.lock"), timeout=timeout):
            if os.path.exists(torch_lock):
                logger.warning(
                    "fused CPU mask kernel: stale build lock %s (left by a build that was killed; no process is building it now); "
                    "using torch mul_ (same result, slower on CPU). Delete that file to rebuild the kernel.",
                    torch_lock,
                )
                return None
            logger.info("loading the fused CPU mask kernel (compiled by torch.utils.cpp_extension the first time on a machine, ~20 s)")
            return load_inline(
                name=EXTENSION_NAME,
                cpp_sources=[_CPP_SOURCE],
                extra_cflags=["-O3", "-fopenmp"],
                extra_ldflags=["-fopenmp"],
                build_directory=build_dir,
                verbose=False,
            )
    except Timeout:
        logger.warning(
            "fused CPU mask kernel: another process has been building it in %s for over %g s (%s); using torch mul_ "
            "(same result, slower on CPU).",
            build_dir,
            timeout,
            ENV_BUILD_TIMEOUT,
        )
        return None


def kernel_applies(x: torch.Tensor, mask: torch.Tensor) -> bool:
    """Whether :func:`mask_mul_` can use the fused kernel for this pair (CPU, float32 ``x``,
    uint8 ``mask``, same shape, both contiguous)."""
    return (
        x.device.type == "cpu"
        and mask.device.type == "cpu"
        and x.dtype == torch.float32
        and mask.dtype == torch.uint8
        and x.shape == mask.shape
        and x.is_contiguous()
        and mask.is_contiguous()
    )


def mask_mul_(x: torch.Tensor, mask: torch.Tensor, use_kernel: bool = True) -> torch.Tensor:
    """In place ``x *= mask``; returns ``x``.

    Args:
        x: any shape and floating dtype, on any device; modified in place.
        mask: ``torch.uint8`` with values in {0, 1} (e.g. ``bool_mask.view(torch.uint8)``), same
            shape as ``x`` (or broadcastable, eager path), same device.
        use_kernel: allow the fused CPU kernel (see the module docstring). The result is identical
            either way: ``x[i] * float(mask[i])``, so ``NaN``/``inf`` at masked positions give
            ``NaN`` and negative values give ``-0.0``, exactly as eager ``mul_``.

    Raises:
        RuntimeError: as eager ``mul_`` does for shapes or devices that do not match.
    """
    if use_kernel and kernel_applies(x, mask):
        ext = load_cpu_kernel()
        if ext is not None:
            ext.mask_mul_f32_u8_(x, mask)
            return x
    return x.mul_(mask)
