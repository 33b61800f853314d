"""Hessian estimators (bert_tickets.connectivity.sharpness) against exact answers on a quadratic
model, whose Hessian is a known matrix A."""

from __future__ import annotations

import pytest
import torch

from bert_tickets.connectivity.sharpness import hessian_vector_product, hutchinson_trace, top_eigenvalue


class Quadratic(torch.nn.Module):
    """loss(w) = ½ wᵀ A w + bᵀ w: Hessian A everywhere."""

    def __init__(self, a: torch.Tensor):
        super().__init__()
        self.a = a
        self.weight = torch.nn.Parameter(torch.randn(a.shape[0], dtype=torch.float64))
        self.b = torch.randn(a.shape[0], dtype=torch.float64)

    def loss(self):
        return 0.5 * self.weight @ self.a @ self.weight + self.b @ self.weight


def _spd(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    eig = torch.tensor([9.0, 4.0, 2.5, 1.0, 0.5, 0.25, 0.1, 0.05][:n], dtype=torch.float64)
    return q @ torch.diag(eig) @ q.T


def test_hessian_vector_product_is_a_times_v():
    torch.manual_seed(0)
    a = _spd(6)
    model = Quadratic(a)
    v = [torch.randn(6, dtype=torch.float64)]
    (hv,) = hessian_vector_product(model.loss, [model.weight], v)
    torch.testing.assert_close(hv, a @ v[0])


def test_power_iteration_finds_the_exact_top_eigenvalue():
    torch.manual_seed(0)
    a = _spd(8)
    model = Quadratic(a)
    out = top_eigenvalue(model, model.loss, iterations=200, tol=1e-10)
    assert out["converged"] == 1
    assert out["eigenvalue"] == pytest.approx(float(torch.linalg.eigvalsh(a).max()), rel=1e-6)  # 9.0


def test_masked_weights_restrict_the_hessian_to_the_subnetwork():
    torch.manual_seed(0)
    a = _spd(8, seed=3)
    model = Quadratic(a)
    keep = torch.tensor([True, False, True, True, False, True, True, False])
    out = top_eigenvalue(model, model.loss, {"weight": keep}, iterations=300, tol=1e-12)
    sub = a[keep][:, keep]
    assert out["eigenvalue"] == pytest.approx(float(torch.linalg.eigvalsh(sub).max()), rel=1e-6)
    assert out["eigenvalue"] < float(torch.linalg.eigvalsh(a).max())


def test_hutchinson_is_exact_for_a_diagonal_hessian_and_unbiased_otherwise():
    torch.manual_seed(0)
    diag = torch.diag(torch.tensor([3.0, 1.0, 0.5, 2.0], dtype=torch.float64))
    model = Quadratic(diag)
    out = hutchinson_trace(model, model.loss, samples=5)
    assert out["trace"] == pytest.approx(6.5) and out["stderr"] == pytest.approx(0.0)  # vᵀDv = tr(D) for ±1 vectors
    keep = torch.tensor([True, False, True, True])
    assert hutchinson_trace(model, model.loss, {"weight": keep}, samples=3)["trace"] == pytest.approx(5.5)
    a = _spd(8)
    model = Quadratic(a)
    out = hutchinson_trace(model, model.loss, samples=400, seed=1)
    exact = float(torch.trace(a))
    assert abs(out["trace"] - exact) < 4 * out["stderr"] and out["stderr"] > 0


def test_bad_counts_are_refused():
    model = Quadratic(_spd(3))
    with pytest.raises(ValueError, match="iterations must be >= 1"):
        top_eigenvalue(model, model.loss, iterations=0)
    with pytest.raises(ValueError, match="samples must be >= 1"):
        hutchinson_trace(model, model.loss, samples=0)
