"""Constant-velocity Kalman filter of DeepSORT on the box measurement ``(cx, cy, a, h)``, ``a = w / h``.

Wojke, Bewley and Paulus, "Simple online and realtime tracking with a deep association metric", ICIP 2017; the exact
noise model is written out in methods.md section 7 "Kalman filter (exact)":

* state ``(cx, cy, a, h, v_cx, v_cy, v_a, v_h)``, ``F = [[I4, I4], [0, I4]]`` (dt = 1), ``H = [I4, 0]``;
* noise standard deviations relative to the box height ``h`` (``STD_POS = 1/20``, ``STD_VEL = 1/160``), with fixed
  values for the aspect ratio (``1e-2`` / ``1e-5`` process, ``1e-1`` measurement);
* gating by the squared Mahalanobis distance against the chi-square 0.95 quantile (``CHI2_95[4] = 9.4877``).

Every function takes one state (``mean (8,)``, ``cov (8, 8)``); ``predict`` and ``project`` also take a batch
(``(T, 8)``, ``(T, 8, 8)``), and ``update_batch`` / ``gating_distance_batch`` are the batched forms of ``update`` /
``gating_distance`` that the tracker uses.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

__all__ = [
    "CHI2_95",
    "MOTION",
    "OBSERVATION",
    "STD_POS",
    "STD_VEL",
    "gating_distance",
    "gating_distance_batch",
    "initiate",
    "predict",
    "project",
    "update",
    "update_batch",
]

STD_POS = 1.0 / 20.0
STD_VEL = 1.0 / 160.0

#: 0.95 quantile of the chi-square distribution with ``k`` degrees of freedom, ``k = 1 .. 9``.
CHI2_95: dict[int, float] = {
    1: 3.8415,
    2: 5.9915,
    3: 7.8147,
    4: 9.4877,
    5: 11.070,
    6: 12.592,
    7: 14.067,
    8: 15.507,
    9: 16.919,
}

MOTION = np.eye(8)
MOTION[:4, 4:] = np.eye(4)
MOTION.setflags(write=False)
OBSERVATION = np.eye(4, 8)
OBSERVATION.setflags(write=False)


def initiate(measurement: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """New track from one measurement ``(cx, cy, a, h)``: mean ``(z, 0)``, diagonal covariance (8, 8)."""
    z = np.asarray(measurement, dtype=np.float64)
    p, v = 2 * STD_POS * z[3], 10 * STD_VEL * z[3]
    std = np.array([p, p, 1e-2, p, v, v, 1e-5, v])
    return np.concatenate([z, np.zeros(4)]), np.diag(std**2)


def _diag_batch(std: np.ndarray) -> np.ndarray:
    """``(..., k)`` standard deviations -> ``(..., k, k)`` diagonal covariances."""
    out = np.zeros((*std.shape, std.shape[-1]))
    idx = np.arange(std.shape[-1])
    out[..., idx, idx] = std**2
    return out


def predict(mean: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One step ahead: ``x <- F x``, ``P <- F P F^T + Q`` with ``Q`` from the current height; single or batch."""
    h = mean[..., 3]
    one = np.ones_like(h)
    std = np.stack(
        [STD_POS * h, STD_POS * h, 1e-2 * one, STD_POS * h, STD_VEL * h, STD_VEL * h, 1e-5 * one, STD_VEL * h], axis=-1
    )
    new_mean = np.einsum("ij,...j->...i", MOTION, mean)
    new_cov = np.einsum("ij,...jk,lk->...il", MOTION, cov, MOTION) + _diag_batch(std)
    return new_mean, new_cov


def project(mean: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Measurement-space distribution ``(H x, H P H^T + R)``, ``R`` from the current height; single or batch."""
    h = mean[..., 3]
    one = np.ones_like(h)
    std = np.stack([STD_POS * h, STD_POS * h, 1e-1 * one, STD_POS * h], axis=-1)
    return mean[..., :4].copy(), cov[..., :4, :4] + _diag_batch(std)


def update(mean: np.ndarray, cov: np.ndarray, measurement: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Correction with one measurement: ``K = P H^T S^-1`` by Cholesky solve, ``x += K (z - H x)``, ``P -= K S K^T``."""
    proj_mean, proj_cov = project(mean, cov)
    factor = scipy.linalg.cho_factor(proj_cov, lower=True, check_finite=False)
    gain = scipy.linalg.cho_solve(factor, (cov @ OBSERVATION.T).T, check_finite=False).T  # (8, 4)
    innovation = np.asarray(measurement, dtype=np.float64) - proj_mean
    return mean + gain @ innovation, cov - gain @ proj_cov @ gain.T


def update_batch(means: np.ndarray, covs: np.ndarray, measurements: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``update`` of ``T`` tracks at once (``(T, 8)``, ``(T, 8, 8)``, ``(T, 4)``); same algebra, batched solve."""
    proj_mean, proj_cov = project(means, covs)
    gain = np.swapaxes(np.linalg.solve(proj_cov, covs[:, :4, :]), 1, 2)  # K^T = S^-1 H P (P symmetric)
    innovation = np.asarray(measurements, dtype=np.float64) - proj_mean
    new_means = means + np.einsum("tij,tj->ti", gain, innovation)
    new_covs = covs - np.einsum("tij,tjk,tlk->til", gain, proj_cov, gain)
    return new_means, new_covs


def gating_distance(mean: np.ndarray, cov: np.ndarray, measurements: np.ndarray) -> np.ndarray:
    """Squared Mahalanobis distance ``(z - H x)^T S^-1 (z - H x)`` of ``M`` measurements ``(M, 4)`` to one track."""
    proj_mean, proj_cov = project(mean, cov)
    chol = np.linalg.cholesky(proj_cov)
    d = np.asarray(measurements, dtype=np.float64).reshape(-1, 4) - proj_mean
    z = scipy.linalg.solve_triangular(chol, d.T, lower=True, check_finite=False)
    return np.sum(z * z, axis=0)


def gating_distance_batch(means: np.ndarray, covs: np.ndarray, measurements: np.ndarray) -> np.ndarray:
    """``(T, M)`` squared Mahalanobis distances of ``M`` measurements to each of ``T`` tracks (batched solve)."""
    proj_mean, proj_cov = project(means, covs)
    d = np.asarray(measurements, dtype=np.float64).reshape(1, -1, 4) - proj_mean[:, None, :]  # (T, M, 4)
    dt = np.swapaxes(d, 1, 2)  # (T, 4, M)
    return np.sum(dt * np.linalg.solve(proj_cov, dt), axis=1)
