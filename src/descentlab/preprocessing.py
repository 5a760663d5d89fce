"""Decorrelating input components (notes 000): PCA rotation and whitening.

For a linear model with squared error the loss surface is a quadratic bowl whose Hessian
is the input covariance ``C``; gradient descent needs about ``κ(C) = λ_max/λ_min`` steps
(notes 003, condition number). Rotating the centred inputs onto the eigenvectors of ``C``
removes the correlations (diagonal covariance); dividing each component by ``√λ_k``
(*whitening*) makes the covariance the identity, so ``κ = 1`` and the bowl is round::

    C = V Λ Vᵀ                (eigen-decomposition of the training covariance, via SVD)
    z = (x − μ) V_k           decorrelated     (covariance Λ_k)
    z = (x − μ) V_k Λ_k^{−½}   whitened          (covariance I)

Fit on the training data, apply the same map to new data::

    pca = decorrelate(X_train, whiten=True)
    Z_train, Z_test = pca(X_train), pca(X_test)

``n_components=k`` keeps the ``k`` directions of largest variance — the notes' "discard
features that add little information".
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .validation import check_bool, check_int, check_number

__all__ = ["decorrelate", "Decorrelation"]


@dataclass(frozen=True)
class Decorrelation:
    """A fitted PCA rotation (and scaling, if ``whiten``) of inputs; call it on data."""

    mean: Tensor  # μ, shape (d,)
    components: Tensor  # V_kᵀ, shape (k, d): unit eigenvectors of C, largest variance first
    variances: Tensor  # λ_1 ≥ ... ≥ λ_k, shape (k,)
    whiten: bool

    @property
    def condition_number(self) -> float:
        """``λ_1/λ_k`` of the kept components — the κ that whitening brings to 1."""
        return float(self.variances[0] / self.variances[-1])

    def transform(self, X: Tensor) -> Tensor:
        """``z = (x − μ) V_k`` (``· Λ_k^{−½}`` when whitening), row by row."""
        X = _as_matrix("X", X, self.mean.shape[0])
        Z = (X.to(self.mean.dtype) - self.mean) @ self.components.T
        return Z / self.variances.sqrt() if self.whiten else Z

    __call__ = transform

    def inverse_transform(self, Z: Tensor) -> Tensor:
        """Back to input space (exact when every component is kept)."""
        Z = _as_matrix("Z", Z, self.components.shape[0])
        if self.whiten:
            Z = Z * self.variances.sqrt()
        return Z @ self.components + self.mean


def _as_matrix(name: str, X: Tensor, columns: int | None = None) -> Tensor:
    if not isinstance(X, Tensor):
        X = torch.as_tensor(X)
    if X.dim() != 2:
        raise ValueError(f"{name} must be a 2-D tensor (samples × features), got shape {tuple(X.shape)}")
    if columns is not None and X.shape[1] != columns:
        raise ValueError(f"{name} must have {columns} columns (as fitted), got {X.shape[1]}")
    return X


def decorrelate(
    X: Tensor, whiten: bool = True, n_components: int | None = None, rtol: float = 1e-10
) -> Decorrelation:
    """Fit the PCA decorrelation (whitening by default) of the rows of ``X`` (samples × features).

    The covariance is ``C = (X − μ)ᵀ(X − μ)/(n − 1)``; its eigenvectors come from the SVD of
    the centred data (``torch.linalg.svd``), each signed so its largest entry is positive
    (deterministic). Whitening a direction whose variance is below ``rtol·λ_1`` would divide
    by ~0: that raises, asking for a smaller ``n_components``.
    """
    X = _as_matrix("X", X)
    if not X.is_floating_point():
        X = X.to(torch.get_default_dtype())
    n, d = X.shape
    if n < 2:
        raise ValueError(f"X needs at least 2 samples to estimate a covariance, got {n}")
    check_bool("whiten", whiten)
    limit = min(n - 1, d)  # the centred data has rank ≤ min(n − 1, d)
    k = limit if n_components is None else check_int("n_components", n_components, low=1, high=limit)
    check_number("rtol", rtol, low=0.0, high=1.0)
    mean = X.mean(0)
    _, s, vh = torch.linalg.svd(X - mean, full_matrices=False)
    variances = s[:k] ** 2 / (n - 1)
    components = vh[:k]
    signs = torch.sign(components.gather(1, components.abs().argmax(1, keepdim=True)))
    components = components * signs
    if whiten and variances[-1] <= rtol * variances[0]:
        raise ValueError(
            f"cannot whiten: component {k} has variance {variances[-1].item():.3g} ≤ rtol·λ_1; "
            f"the data has fewer independent directions — pass a smaller n_components"
        )
    return Decorrelation(mean=mean, components=components, variances=variances, whiten=whiten)
