"""PCA decorrelation / whitening against NumPy and scikit-learn, and its effect on gradient descent."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from descentlab.preprocessing import decorrelate


def correlated_data(n=500, d=5, seed=0, condition=1e3):
    """Gaussian inputs whose covariance has eigenvalues spread over ``condition``, rotated."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    scales = np.sqrt(np.geomspace(condition, 1.0, d))
    X = rng.standard_normal((n, d)) * scales @ q.T + rng.standard_normal(d)
    return torch.from_numpy(X)


def test_whitened_training_covariance_is_the_identity():
    X = correlated_data()
    Z = decorrelate(X)(X)
    np.testing.assert_allclose(np.cov(Z.numpy(), rowvar=False), np.eye(5), atol=1e-10)
    np.testing.assert_allclose(Z.mean(0).numpy(), 0.0, atol=1e-12)


def test_decorrelated_covariance_is_diagonal_with_the_eigenvalues():
    X = correlated_data()
    pca = decorrelate(X, whiten=False)
    Z = pca(X)
    eig = np.sort(np.linalg.eigvalsh(np.cov(X.numpy(), rowvar=False)))[::-1]
    np.testing.assert_allclose(np.cov(Z.numpy(), rowvar=False), np.diag(eig), atol=1e-9 * eig[0])
    np.testing.assert_allclose(pca.variances.numpy(), eig, rtol=1e-10)
    assert pca.condition_number == pytest.approx(eig[0] / eig[-1], rel=1e-10)
    torch.testing.assert_close(pca.inverse_transform(Z), X, rtol=0, atol=1e-10)


def test_matches_scikit_learn_pca_whitening_on_new_data():
    from sklearn.decomposition import PCA

    X, X_new = correlated_data(seed=1), correlated_data(n=50, seed=2)
    ours = decorrelate(X, whiten=True, n_components=3)
    ref = PCA(n_components=3, whiten=True, svd_solver="full").fit(X.numpy())
    Z, Z_ref = ours(X_new).numpy(), ref.transform(X_new.numpy())
    signs = np.sign((Z * Z_ref).sum(0))  # eigenvectors are defined up to sign
    np.testing.assert_allclose(Z * signs, Z_ref, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(ours.variances.numpy(), ref.explained_variance_, rtol=1e-10)


def test_reduced_whitening_keeps_the_largest_directions():
    X = correlated_data()
    pca = decorrelate(X, n_components=2)
    Z = pca(X)
    assert Z.shape == (500, 2)
    np.testing.assert_allclose(np.cov(Z.numpy(), rowvar=False), np.eye(2), atol=1e-10)
    _, vecs = np.linalg.eigh(np.cov(X.numpy(), rowvar=False))
    top = vecs[:, ::-1][:, :2].T  # eigenvectors of the two largest eigenvalues
    np.testing.assert_allclose(np.abs(pca.components.numpy() @ top.T), np.eye(2), atol=1e-10)


def gd_steps_to_converge(X, y, tol=1e-8, limit=200_000):
    """Plain gradient descent on ½·mean((Xw − y)²) with step 1/λ_max(H); steps until ‖∇‖ ≤ tol."""
    n = X.shape[0]
    H = X.T @ X / n
    lr = 1.0 / np.linalg.eigvalsh(H)[-1]
    w = np.zeros(X.shape[1])
    for step in range(limit):
        grad = X.T @ (X @ w - y) / n
        if np.linalg.norm(grad) <= tol:
            return step, np.linalg.cond(H)
        w -= lr * grad
    return limit, np.linalg.cond(H)


def test_whitening_makes_gradient_descent_on_correlated_regression_far_faster():
    X = correlated_data(condition=300.0)
    rng = np.random.default_rng(3)
    y = X.numpy() @ rng.standard_normal(5) + 0.1 * rng.standard_normal(500)
    y = y - y.mean()
    centred = X.numpy() - X.numpy().mean(0)  # same centring, no rotation
    steps_raw, kappa_raw = gd_steps_to_converge(centred, y)
    steps_white, kappa_white = gd_steps_to_converge(decorrelate(X)(X).numpy(), y)
    assert kappa_raw > 100 and kappa_white == pytest.approx(1.0, abs=1e-8)
    assert steps_white <= 3
    assert steps_raw > 100 * steps_white


def test_bad_arguments():
    X = correlated_data()
    with pytest.raises(ValueError, match="n_components"):
        decorrelate(X, n_components=0)
    with pytest.raises(ValueError, match="n_components"):
        decorrelate(X, n_components=6)
    with pytest.raises(ValueError, match="2-D"):
        decorrelate(X[:, 0])
    with pytest.raises(ValueError, match="columns"):
        decorrelate(X)(X[:, :3])
    collinear = torch.cat([X, X[:, :1] * 2], dim=1)
    with pytest.raises(ValueError, match="smaller n_components"):
        decorrelate(collinear)
    assert decorrelate(collinear, n_components=5)(collinear).shape == (500, 5)


def test_whiten_and_rtol_are_checked():
    X = torch.randn(20, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match="whiten"):
        decorrelate(X, whiten="yes")
    with pytest.raises(ValueError, match="rtol"):
        decorrelate(X, rtol=-1e-3)
