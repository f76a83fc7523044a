"""Latent inference: project samples onto the decoder's manifold.

For each sample, find the latent vector whose decoding best reconstructs the
sample's observed entries, with the decoder frozen. Every sample's problem is
independent: the objective is a sum of per-sample losses, every optimiser
below keeps all its state per row (step sizes, curvature, damping) and each
row stops on its own test, so a row's result never depends on the other rows
of its chunk.

Three optimisers (``method``):

* ``"lbfgs"`` (default): a quasi-Newton method per row, with a backtracking
  (Armijo) line search per row. One decoder forward and backward pass per
  iteration, a few tens of iterations to converge.
* ``"lm"``: Levenberg-Marquardt on the Gauss-Newton approximation
  ``J^T W J`` (``W = p(1 - p)`` for binary cross-entropy from logits), with
  the Jacobian by forward-mode AD (one pass per latent dimension) and a
  per-row adaptive damping (Nielsen's rule). Each iteration costs about
  ``n_components`` decoder passes: the choice for linear decoders (a few
  steps reach the least-squares projection, with or without missing
  entries) and smooth ones; on ReLU decoders (measured: MNIST preset, small
  MLPs) it is slower than L-BFGS for the same loss.
* ``"adam"``: Adam with per-row step cuts (the earlier default). Slower to
  converge, but on some small ReLU MLPs its larger early steps end in
  better local minima (measured: +0.3% loss for L-BFGS on one of five).

float32. Rounding depends on a row's batch: BLAS and oneDNN kernels sum in
another order for a ragged remainder of rows, and for a thin product (the
gradient through the input layer, n x n_components) by the row's position
in the batch. A long per-row trajectory on a kinked (ReLU) landscape
amplifies such last-bit differences into visibly different latents (up to
twice a row's norm in the tests). Hence every decoder evaluation runs on a
multiple of ``_ROW_BLOCK`` rows (padded), the input layer's gradient is one
small product per row, and on CPU each row's arithmetic is then bitwise
independent of the other rows (measured on the MLP and conv decoders).
Where a backend still rounds by batch, every per-row decision (a line
search's acceptance, a stall, a convergence test) compares losses with a
margin of a few float epsilons of the loss (``_NOISE``), and per-row factors
such as Adam's bias corrections come from tables rather than from
vectorised transcendental kernels.

Starting points (see :func:`nearest_latents` and the estimators' ``init``)
are computed chunk by chunk too, each row from its own sample only.
"""

import math
from contextlib import contextmanager
from typing import NamedTuple

import torch
from torch import nn
from torch.func import hessian, jvp, vmap

from ._likelihoods import get_likelihood
from ._losses import masked_sum
from ._priors import GaussianPrior
from .nn import MaskedLinear

# Decoder evaluations run on a multiple of this many rows (see _pad).
_ROW_BLOCK = 16
# Loss comparisons allow this many float epsilons of the loss's magnitude:
# measured, a row's loss changes by up to ~2 eps with its chunk's size.
_NOISE = 32

# ---- L-BFGS
_HISTORY = 8  # curvature pairs kept per row
_ARMIJO = 1e-4  # sufficient decrease: L(z + a d) <= L(z) + _ARMIJO a g.d
_BACKTRACKS = 12  # step halvings before a row's line search gives up

# ---- Levenberg-Marquardt
_DAMPING = 1e-2  # initial damping, relative to J^T W J's diagonal
_MIN_DAMPING = 1e-12
_MAX_DAMPING = 1e12
_CONVERGED_DAMPING = 1.0  # a small predicted gain only means convergence below this
_JACOBIAN_ROWS = 4096  # rows x n_components evaluated per forward-mode pass

# ---- Adam: a sample whose best loss has not improved by more than a
# fraction ``tol`` for PATIENCE consecutive steps returns to its best latent
# with a step STEP_CUT times smaller and fresh moments (large steps find the
# basin fast, small ones settle in it); at the N_CUTS-th cut it stops.
PATIENCE = 3
STEP_CUT = 0.3
N_CUTS = 4
_BETAS = (0.9, 0.999)
_EPS = 1e-8

class InferenceResult(NamedTuple):
    """What :func:`infer_latents` returns."""

    latents: torch.Tensor
    """(n_samples, n_components) inferred latents, on the inference device."""
    n_iter: torch.Tensor
    """(n_samples,) int64: iterations each row used."""
    converged: torch.Tensor
    """(n_samples,) bool: False where a row stopped at ``max_iter``."""
    overshot: torch.Tensor = None
    """(n_samples,) bool: True where every step tried overshot (see :func:`_adam_chunk`)."""


@contextmanager
def frozen(module):
    """Eval mode and no parameter gradients while inside; restored after.

    Without ``requires_grad=False`` autograd keeps the weights' inputs alive
    for a weight gradient that inference never uses.
    """
    was_training = module.training
    flags = [p.requires_grad for p in module.parameters()]
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    try:
        yield module
    finally:
        for p, flag in zip(module.parameters(), flags):
            p.requires_grad_(flag)
        module.train(was_training)


class _ChunkProblem:
    """One chunk's per-row objectives: reconstruction loss plus penalty.

    Every method takes ``rows``, an index into the chunk, so that a subset
    of the rows (the active ones) is evaluated in one batched pass.
    """

    def __init__(self, decoder, x, mask, loss, penalty):
        self.likelihood = get_likelihood(loss)
        self.forward, self.link = self.likelihood.head(decoder)
        self.x, self.mask, self.penalty = x, mask, penalty
        self.eps = torch.finfo(x.dtype).eps
        self.split = _split_input_linear(self.forward)

    def _data_losses(self, f, x, mask):
        """Per-row loss of the output ``f`` (with the likelihood's row offset)."""
        offset = self.likelihood.row_offset(f, x, self.link, mask)
        return masked_sum(self.likelihood.nll(f, x, self.link, offset), mask)

    def _take(self, rows):
        return self.x[rows], None if self.mask is None else self.mask[rows]

    def losses(self, z, rows):
        """``(loss, size)`` per row; ``size`` bounds the loss's rounding error."""
        n = len(z)
        z, rows = _pad(z, rows)
        x, mask = self._take(rows)
        data = self._data_losses(self.forward(z), x, mask)[:n]
        if self.penalty is None:
            return data, data.abs()
        prior = self.penalty(z)[:n]
        return data + prior, data.abs() + prior.abs()

    def noise(self, size):
        """A margin above the rounding of a loss of magnitude ``size``."""
        return _NOISE * self.eps * size

    def losses_and_grads(self, z, rows):
        """``(loss, size, grad)`` per row, no graph kept."""
        if self.split is None:
            with torch.enable_grad():
                z = z.detach().requires_grad_(True)
                total, size = self.losses(z, rows)
                (grad,) = torch.autograd.grad(total.sum(), z)
            return total.detach().to(z.dtype), size.detach().to(z.dtype), grad
        # The gradient through the input layer is grad_h @ W, an (n, m)
        # product whose rows BLAS sums in another order by their position in
        # the batch when m is small; one small product per row (bmm) is
        # position-free.
        head, body, weight = self.split
        n = len(z)
        z_pad, rows = _pad(z, rows)
        x, mask = self._take(rows)
        with torch.enable_grad():
            h = head(z_pad).detach().requires_grad_(True)
            data = self._data_losses(body(h), x, mask)[:n]
            (grad_h,) = torch.autograd.grad(data.sum(), h)
        grad = torch.bmm(grad_h[:n, None, :], weight.expand(n, *weight.shape))[:, 0]
        # Under autocast (precision="bfloat16") the products come out in the
        # lower precision; the latents and their updates stay in z's dtype.
        grad, data = grad.to(z.dtype), data.detach().to(z.dtype)
        if self.penalty is None:
            return data, data.abs(), grad
        prior, prior_grad = _penalty_and_grad(self.penalty, z_pad)
        return data + prior[:n], data.abs() + prior[:n].abs(), grad + prior_grad[:n]

    def linearise(self, z, rows):
        """``(loss, size, grad, gauss_newton)`` per row, for Levenberg-Marquardt.

        The Jacobian of each row's output comes from forward-mode AD, one
        tangent per latent dimension, all vmapped in one pass (a row's
        tangent only moves its own output: rows are independent).
        """
        n, m = z.shape
        z, rows = _pad(z, rows)
        x, mask = self._take(rows)
        f, jac = [], []
        step = max(1, _JACOBIAN_ROWS // (m * _ROW_BLOCK)) * _ROW_BLOCK
        for start in range(0, len(z), step):
            zc = z[start : start + step]
            tangents = torch.eye(m, dtype=z.dtype, device=z.device)[:, None, :].expand(m, len(zc), m)
            fc, jc = vmap(lambda t, zc=zc: jvp(self.forward, (zc,), (t,)), out_dims=(None, 0))(tangents)
            f.append(fc)
            jac.append(jc)
        f, jac = torch.cat(f), torch.cat(jac, dim=1)  # jac: (m, n, n_features)
        offset = self.likelihood.row_offset(f, x, self.link, mask)
        slope, weight = self.likelihood.derivatives(f, x, self.link, offset)
        if mask is not None:
            zero = torch.zeros((), dtype=f.dtype, device=f.device)
            slope, weight = torch.where(mask, slope, zero), torch.where(mask, weight, zero)
        data = masked_sum(self.likelihood.nll(f, x, self.link, offset), mask)
        data = data[:n].to(z.dtype)
        # The normal equations in the latents' dtype, never autocast: J^T W J
        # overflows float16 and loses the small curvatures in bfloat16.
        with torch.autocast(z.device.type, enabled=False):
            jac, slope, weight = jac.to(z.dtype), slope.to(z.dtype), weight.to(z.dtype)
            grad = torch.einsum("knf,nf->nk", jac, slope)[:n]
            gn = torch.einsum("knf,nf,lnf->nkl", jac, weight, jac)[:n]
        if self.penalty is None:
            return data, data.abs(), grad, gn
        prior, prior_grad, prior_hess = (t[:n] for t in penalty_terms(self.penalty, z))
        return data + prior, data.abs() + prior.abs(), grad + prior_grad, gn + prior_hess


def data_gauss_newton(decoder, x, z, *, loss, mask=None):
    """Each row's data loss and its Gauss-Newton matrix in the latent, at ``z``.

    Parameters
    ----------
    decoder : torch.nn.Module
        Frozen by the caller (:func:`frozen`).
    x : torch.Tensor of shape (n, n_features)
    z : torch.Tensor of shape (n, n_components)
    loss : str or Likelihood
    mask : torch.Tensor of bool, shape (n, n_features), default=None

    Returns
    -------
    loss : torch.Tensor of shape (n,)
        The summed loss over each row's observed entries.
    gauss_newton : torch.Tensor of shape (n, n_components, n_components)
        ``J^T W J``, ``W`` the likelihood's Gauss-Newton weight (``2`` for
        "mse", ``p (1 - p)`` for "bce").
    """
    with torch.no_grad():
        problem = _ChunkProblem(decoder, x, mask, loss, None)
        data, _, _, gn = problem.linearise(z, torch.arange(len(z), device=z.device))
    return data, gn


def _split_input_linear(module):
    """``(linear, rest, weight)`` when ``module`` first applies an affine layer.

    ``linear`` is an ``nn.Linear`` (or the package's ``MaskedLinear``) that
    ``module`` applies first, possibly inside nested ``nn.Sequential``s;
    ``rest`` does the remainder (sharing the modules); ``weight`` is the
    layer's effective (out_features, in_features) matrix. None otherwise.
    """
    if type(module) is nn.Linear:
        return module, nn.Identity(), module.weight
    if isinstance(module, MaskedLinear):
        return module, nn.Identity(), module.weight * module.mask
    if not isinstance(module, nn.Sequential) or len(module) == 0:
        return None
    children = list(module)
    inner = _split_input_linear(children[0])
    if inner is None:
        return None
    head, rest, weight = inner
    return head, nn.Sequential(rest, *children[1:]), weight


def _pad(z, rows):
    """``z`` and ``rows`` padded to a multiple of ``_ROW_BLOCK`` rows (last row repeated).

    Measured on CPU (MKL/oneDNN), a row's decoder output is bitwise the same
    in any batch whose size is a multiple of 16, and differs in the last bits
    in smaller or ragged batches (other kernels, and scalar tails of the
    vectorised elementwise ones, for the remainder rows).
    """
    pad = -len(z) % _ROW_BLOCK
    if pad == 0:
        return z, rows
    return torch.cat([z, z[-1:].expand(pad, -1)]), torch.cat([rows, rows[-1:].expand(pad)])


def _penalty_and_grad(penalty, z):
    """Value and gradient of ``penalty`` per row."""
    with torch.enable_grad():
        zg = z.detach().requires_grad_(True)
        value = penalty(zg)
        (grad,) = torch.autograd.grad(value.sum(), zg)
    return value.detach(), grad


def penalty_terms(penalty, z):
    """Value, gradient and positive semi-definite Hessian of ``penalty`` per row."""
    value, grad = _penalty_and_grad(penalty, z)
    hess = vmap(hessian(lambda zi: penalty(zi[None])[0]))(z)
    # A mixture prior is not convex: keep the Hessian's non-negative part so
    # that the damped system stays positive definite.
    evals, evecs = torch.linalg.eigh(hess)
    hess = evecs @ torch.diag_embed(evals.clamp(min=0)) @ evecs.transpose(1, 2)
    return value, grad, hess


def _small(gain, loss, size, tol, problem):
    """Rows whose predicted ``gain`` is below ``tol`` of the loss (or its rounding)."""
    return gain <= tol * loss.abs() + problem.noise(size)


def _two_loop(grad, S, Y, R):
    """L-BFGS direction ``-H grad`` from the per-row pairs (oldest first).

    Empty slots have ``R == 0`` and contribute nothing; ``H0 = gamma I`` with
    the newest pair's ``s.y / y.y``.
    """
    q = grad.clone()
    alpha = torch.zeros_like(R)
    for j in range(S.shape[1] - 1, -1, -1):
        alpha[:, j] = R[:, j] * (S[:, j] * q).sum(1)
        q -= alpha[:, j, None] * Y[:, j]
    yy = (Y[:, -1] * Y[:, -1]).sum(1)
    gamma = torch.where(yy > 0, (S[:, -1] * Y[:, -1]).sum(1) / yy.clamp(min=torch.finfo(yy.dtype).tiny), 1.0)
    r = gamma[:, None] * q
    for j in range(S.shape[1]):
        beta = R[:, j] * (Y[:, j] * r).sum(1)
        r += S[:, j] * (alpha[:, j] - beta)[:, None]
    return -r


def _gradient_step(grad, size):
    """``-grad`` scaled so that its largest coordinate moves by ``size``."""
    top = grad.abs().amax(dim=1, keepdim=True)
    return -grad * (size / top.clamp(min=torch.finfo(grad.dtype).tiny))


def _line_search(problem, rows, z, loss, size, d, slope):
    """Per-row backtracking (Armijo) line search along ``d`` from a unit step.

    Each round evaluates the rows still searching in one batch; a row whose
    trial does not decrease the loss enough halves its step. A row that
    fails ``_BACKTRACKS`` times takes no step.

    Returns
    -------
    new : tuple of torch.Tensor
        ``(z, loss, size, grad)`` at the accepted point of each row (NaN rows
        where none was accepted: the caller keeps its own values there).
    unit : torch.Tensor of bool
        Rows that accepted the unit step.
    accepted : torch.Tensor of bool
    """
    n = len(z)
    alpha = torch.ones(n, dtype=z.dtype, device=z.device)
    new_z, new_grad = torch.full_like(z, math.nan), torch.full_like(z, math.nan)
    new_loss, new_size = torch.full_like(loss, math.nan), torch.full_like(size, math.nan)
    accepted = torch.zeros(n, dtype=torch.bool, device=z.device)
    pending = torch.arange(n, device=z.device)
    for _ in range(_BACKTRACKS):
        trial = z[pending] + alpha[pending, None] * d[pending]
        t_loss, t_size, t_grad = problem.losses_and_grads(trial, rows[pending])
        bound = loss[pending] + _ARMIJO * alpha[pending] * slope[pending]
        # The margin: a unit step at the rounding level is taken, not halved.
        ok = t_loss <= bound + problem.noise(torch.maximum(size[pending], t_size))
        good = pending[ok]
        new_z[good], new_loss[good], new_size[good], new_grad[good] = trial[ok], t_loss[ok], t_size[ok], t_grad[ok]
        accepted[good] = True
        # The minimiser of the quadratic through L(0), L'(0) and L(alpha),
        # kept within [0.1, 0.5] alpha (a far overshoot shrinks tenfold).
        tried, rise = alpha[pending[~ok]], t_loss[~ok] - loss[pending[~ok]] - slope[pending[~ok]] * alpha[pending[~ok]]
        best = -slope[pending[~ok]] * tried * tried / (2 * rise)
        pending = pending[~ok]
        if len(pending) == 0:
            break
        alpha[pending] = torch.where(torch.isfinite(best), best, 0.1 * tried).clamp(0.1 * tried, 0.5 * tried)
    return (new_z, new_loss, new_size, new_grad), accepted & (alpha == 1), accepted


def _lbfgs_chunk(problem, z0, *, max_iter, learning_rate, tol):
    """L-BFGS per row with a per-row backtracking line search.

    The first step (and any step after a restart) follows the gradient, its
    largest coordinate moving by ``learning_rate``. A row has converged when
    its quasi-Newton step, taken in full, was predicted to gain less than
    ``tol`` of its loss (``-g.d / 2``: exact for a quadratic), or when no step
    along a descent direction beats the loss's rounding (none accepted, or,
    with a small predicted gain, the accepted one gained nothing above it).
    """
    n, m = z0.shape
    z = z0.clone()
    S = z.new_zeros(n, _HISTORY, m)
    Y = z.new_zeros(n, _HISTORY, m)
    R = z.new_zeros(n, _HISTORY)  # 1 / (s.y); 0 for an empty slot
    n_iter = torch.zeros(n, dtype=torch.long, device=z.device)
    converged = torch.zeros(n, dtype=torch.bool, device=z.device)
    active = torch.arange(n, device=z.device)
    if max_iter == 0:
        return z, n_iter, converged
    loss, size, grad = problem.losses_and_grads(z, active)
    for _ in range(max_iter):
        a = active
        d = _two_loop(grad[a], S[a], Y[a], R[a])
        slope = (grad[a] * d).sum(1)
        # No history yet, or not a descent direction: restart from the gradient.
        restart = (R[a, -1] == 0) | ~(slope < 0)
        if restart.any():
            d[restart] = _gradient_step(grad[a[restart]], learning_rate)
            S[a[restart]], Y[a[restart]], R[a[restart]] = 0.0, 0.0, 0.0
            slope = (grad[a] * d).sum(1)
        small = _small(-0.5 * slope, loss[a], size[a], tol, problem) & ~restart
        stationary = ~(grad[a] != 0).any(dim=1)
        (new_z, new_loss, new_size, new_grad), unit, accepted = _line_search(
            problem, a, z[a], loss[a], size[a], d, slope
        )
        # At the optimum to the loss's rounding, curvature pairs made of rounding
        # noise can keep the unit step from ever being accepted: a small predicted
        # gain and a step that gained nothing above the rounding also converge.
        stalled = small & accepted & ~(new_loss < loss[a] - problem.noise(size[a]))
        # Keep a pair only where it has positive curvature (BFGS stays positive definite).
        s = new_z - z[a]
        y = new_grad - grad[a]
        sy = (s * y).sum(1)
        keep = accepted & (sy > 1e-10 * s.norm(dim=1) * y.norm(dim=1))
        if keep.any():
            rows = a[keep]
            S[rows] = torch.cat([S[rows, 1:], s[keep, None]], dim=1)
            Y[rows] = torch.cat([Y[rows, 1:], y[keep, None]], dim=1)
            R[rows] = torch.cat([R[rows, 1:], 1 / sy[keep, None]], dim=1)
        moved = a[accepted]
        z[moved], loss[moved], size[moved], grad[moved] = (
            new_z[accepted], new_loss[accepted], new_size[accepted], new_grad[accepted],
        )
        n_iter[a] += 1
        stop = (small & unit) | stalled | ~accepted | stationary
        # (A row whose loss is not finite stops too, unconverged.)
        converged[a[stop & torch.isfinite(loss[a])]] = True
        active = a[~stop]
        if len(active) == 0:
            break
    return z, n_iter, converged


def _lm_chunk(problem, z0, *, max_iter, learning_rate, tol):
    """Levenberg-Marquardt per row, the damping adapted per row (Nielsen 1999).

    The damping scales J^T W J's diagonal (Marquardt), floored at a small
    fraction of the row's largest diagonal entry so that flat directions are
    damped too. A row has converged when an accepted step at low damping was
    predicted by the Gauss-Newton model to gain less than ``tol`` of the
    loss; ``learning_rate`` is not used.
    """
    n, m = z0.shape
    z = z0.clone()
    n_iter = torch.zeros(n, dtype=torch.long, device=z.device)
    converged = torch.zeros(n, dtype=torch.bool, device=z.device)
    if max_iter == 0:
        return z, n_iter, converged
    damping = torch.full((n,), _DAMPING, dtype=z.dtype, device=z.device)
    growth = torch.full((n,), 2.0, dtype=z.dtype, device=z.device)
    loss, size = z.new_empty(n), z.new_empty(n)
    grad, gn = z.new_empty(n, m), z.new_empty(n, m, m)
    active = torch.arange(n, device=z.device)
    stale = active  # rows whose linearisation must be (re)computed
    for _ in range(max_iter):
        if len(stale):
            loss[stale], size[stale], grad[stale], gn[stale] = problem.linearise(z[stale], stale)
        a = active
        diag = torch.diagonal(gn[a], dim1=1, dim2=2)
        scale = diag.clamp(min=1e-6 * diag.amax(dim=1, keepdim=True).clamp(min=problem.eps))
        system = gn[a] + torch.diag_embed(damping[a, None] * scale)
        step = -torch.linalg.solve(system, grad[a])
        predicted = -((grad[a] * step).sum(1) + 0.5 * torch.einsum("nk,nkl,nl->n", step, gn[a], step))
        t_loss, t_size = problem.losses(z[a] + step, a)
        gain = loss[a] - t_loss
        accepted = (gain >= -problem.noise(torch.maximum(size[a], t_size))) & torch.isfinite(t_loss)
        # Continuous in the gain ratio: a ratio at the rounding level (a gain
        # within the noise, kept) doubles the damping as a rejection does.
        ratio = (gain / predicted.clamp(min=problem.eps)).clamp(0, 1)
        centred = 2 * ratio - 1
        shrink = torch.clamp(1 - centred * centred * centred, min=1 / 3)
        low = damping[a] <= _CONVERGED_DAMPING
        damping[a] = torch.where(accepted, damping[a] * shrink, damping[a] * growth[a]).clamp(_MIN_DAMPING, _MAX_DAMPING)
        growth[a] = torch.where(accepted, 2.0, 2 * growth[a])
        moved = a[accepted]
        z[moved] = z[moved] + step[accepted]
        n_iter[a] += 1
        stop = accepted & low & _small(predicted, loss[a], size[a], tol, problem)
        # Damping at its ceiling: no step beats the rounding, the row is done.
        stop |= damping[a] >= _MAX_DAMPING
        converged[a[stop]] = True
        active = a[~stop]
        stale = a[accepted & ~stop]
        if len(active) == 0:
            break
    return z, n_iter, converged


def _adam_chunk(problem, z0, *, max_iter, learning_rate, tol):
    """Adam with per-row step cuts on one chunk's latents.

    Returns the best latent each row visited. Rows leave the active set once
    they stop (early exit), so a converged sample costs nothing more; all
    state (moments, step size, step count) is per row. ``converged`` is True
    for rows that stopped after their last step cut.

    ``overshot`` marks the rows that never improved on their start and
    whose every step, down to the last cut, landed on a loss above the
    start's by more than the start's magnitude plus one unit per feature:
    a step size far too large for the decoder (the start is returned; the
    caller warns). A row already at its minimum only overshoots by little.
    """
    n = len(z0)
    z, best = z0.clone(), z0.clone()
    row = dict(dtype=z.dtype, device=z.device)
    n_iter = torch.zeros(n, dtype=torch.long, device=z.device)
    converged = torch.zeros(n, dtype=torch.bool, device=z.device)
    if max_iter == 0:
        return best, n_iter, converged, torch.zeros_like(converged)
    m1, m2 = torch.zeros_like(z), torch.zeros_like(z)
    best_loss = torch.full((n,), math.inf, **row)
    start_loss = None
    tried = torch.full((n,), math.inf, **row)  # the lowest loss at a point stepped to
    stepped_any = torch.zeros(n, dtype=torch.bool, device=z.device)
    lr = torch.full((n, 1), float(learning_rate), **row)
    t = torch.zeros(n, 1, dtype=torch.long, device=z.device)  # Adam's step count, restarted at each cut
    # Bias corrections by table: a vectorised pow rounds differently from the
    # scalar one used for a tensor's last elements, i.e. by row position.
    steps = torch.arange(max_iter + 1, dtype=torch.float64)
    debias1 = (1 - _BETAS[0] ** steps).to(**row)
    debias2 = (1 - _BETAS[1] ** steps).to(**row)
    stall = torch.zeros(n, dtype=torch.long, device=z.device)
    cuts = torch.zeros(n, dtype=torch.long, device=z.device)
    active = torch.arange(n, device=z.device)
    b1, b2 = _BETAS
    for _ in range(max_iter):
        losses, size, grad = problem.losses_and_grads(z[active], active)
        za = z[active]
        if start_loss is None:
            start_loss = losses.clone()
        else:  # t == 0: a row's restart from its best point, not a step tried
            from_step = t[active, 0] > 0
            stepped, reached = active[from_step], losses[from_step]
            reached = torch.where(torch.isnan(reached), math.inf, reached)
            tried[stepped] = torch.minimum(tried[stepped], reached)
            stepped_any[stepped] = True
        # Only an improvement above the rounding counts (see the module doc).
        margin = problem.noise(size)
        best_a = best_loss[active]
        better = losses < best_a - margin
        threshold = best_a - tol * best_a.abs() - margin
        improved = losses < torch.where(torch.isfinite(best_a), threshold, math.inf)
        best[active[better]] = za[better]
        best_loss[active[better]] = losses[better]
        stall[active] = torch.where(improved, 0, stall[active] + 1)
        ta = t[active] + 1
        m1[active] = b1 * m1[active] + (1 - b1) * grad
        m2[active] = b2 * m2[active] + (1 - b2) * grad * grad
        step = (m1[active] / debias1[ta]) / ((m2[active] / debias2[ta]).sqrt() + _EPS)
        z[active] = za - lr[active] * step
        t[active] = ta
        n_iter[active] += 1
        # Rows out of patience: cut the step and restart from the best.
        cut = active[stall[active] >= PATIENCE]
        if len(cut):
            cuts[cut] += 1
            stall[cut] = 0
            lr[cut] *= STEP_CUT
            z[cut], m1[cut], m2[cut], t[cut] = best[cut], 0.0, 0.0, 0
            converged[cut[cuts[cut] >= N_CUTS]] = True
            active = active[cuts[active] < N_CUTS]
        if len(active) == 0:
            break
    features = problem.x.shape[1] if problem.mask is None else problem.mask.sum(dim=1)
    overshot = stepped_any & (best_loss >= start_loss) & (tried > start_loss + start_loss.abs() + features)
    return best, n_iter, converged, overshot


# The values of ``inference_method=``: a solver is
# ``solve(problem, z0, *, max_iter, learning_rate, tol) -> (z, n_iter, converged[, overshot])``
# on one chunk's ``_ChunkProblem``, every row on its own. Adding a method is one
# function and one line here.
_SOLVERS = {"lbfgs": _lbfgs_chunk, "lm": _lm_chunk, "adam": _adam_chunk}
METHODS = tuple(_SOLVERS)


def infer_latents(
    decoder,
    X,
    init,
    *,
    loss,
    mask=None,
    method="lbfgs",
    max_iter=100,
    learning_rate=0.1,
    tol=1e-4,
    penalty=None,
    latent_l2=0.0,
    batch_size=256,
    device="cpu",
):
    """Infer the latents of ``X`` under a frozen ``decoder``.

    Each row minimises ``loss(decoder(z), x) + penalty(z)`` over its observed
    entries on its own: the result of a row does not depend on the other
    rows, the chunk size, or the row's position. The solve runs in float32
    with autocast turned off (an estimator's ``precision`` applies to
    training and decoding only).

    Parameters
    ----------
    decoder : torch.nn.Module
        Maps (n, n_components) latents to (n, n_features) reconstructions. It
        is put in eval mode; its parameters get no gradient. For "bce" the
        loss is computed from its logits when it ends with a Sigmoid (see
        :func:`~._losses.decoded_losses`).
    X : torch.Tensor of shape (n_samples, n_features)
        Samples, on any device; moved chunk by chunk to ``device``. Entries
        where ``mask`` is False must be finite placeholders.
    init : callable or torch.Tensor of shape (n_samples, n_components)
        ``init(x_chunk, mask_chunk) -> z0`` gives the starting latents of a
        chunk (on ``device``, in X's dtype); each row must depend on its own
        sample only. A tensor gives every sample's start directly.
    loss : str or Likelihood
        Reconstruction loss.
    mask : torch.Tensor of bool, shape (n_samples, n_features), default=None
        True where an entry is observed.
    method : {"lbfgs", "lm", "adam"}, default="lbfgs"
        The optimiser (see the module docstring).
    max_iter : int, default=100
        Most iterations per sample; 0 returns the starting latents.
    learning_rate : float, default=0.1
        In the latents' units. "adam": the step size. "lbfgs": how far the
        first (gradient) step moves the largest coordinate; later steps
        are scaled by the curvature. "lm": not used.
    tol : float, default=1e-4
        Relative loss gain below which a row counts as converged. "lbfgs"
        and "lm": the gain their quadratic model predicts for the next full
        step. "adam": the improvement below which a step counts as no
        progress (a row stops after its fourth step cut).
    penalty : callable, default=None
        ``penalty(z) -> (n,)`` added to each row's loss, from that row's
        latent only (e.g. an L2 prior or a mixture's negative
        log-likelihood). "lm" also needs it to work under ``torch.func``
        transforms (plain tensor operations do).
    latent_l2 : float, default=0.0
        Shorthand for ``penalty=GaussianPrior(latent_l2).penalty`` (see
        :mod:`._priors`).
    batch_size : int, default=256
        Samples per chunk: bounds device memory.
    device : torch.device or str, default="cpu"
        Where the optimisation runs.

    Returns
    -------
    result : InferenceResult
        ``(latents, n_iter, converged, overshot)``: the latents (on
        ``device``, in X's dtype), and per row the iterations used, whether
        the row converged before ``max_iter``, and whether every step it
        tried overshot (returning its start: ``learning_rate`` too large;
        "adam" only, False for the other methods).
    """
    if method not in _SOLVERS:
        raise ValueError(f"Unknown inference method {method!r}; expected one of {METHODS}.")
    if latent_l2:
        if penalty is not None:
            raise ValueError("Pass either penalty or latent_l2, not both.")
        penalty = GaussianPrior(latent_l2).penalty
    solve = _SOLVERS[method]
    if torch.is_tensor(init):
        starts = iter(torch.split(init, batch_size))
        init = lambda x, m: next(starts).to(device=device, dtype=x.dtype)  # noqa: E731
    latents, n_iter, converged, overshot = [], [], [], []
    # Autocast off, whatever the estimator's precision: every decision below
    # compares losses at float32 resolution, which bfloat16 products do not
    # have (measured on MNIST with bfloat16: half the rows wandered to max_iter
    # on rounding noise, at 3x the iterations, for the same latents' quality).
    with frozen(decoder), torch.autocast(torch.device(device).type, enabled=False):
        for x, m in _chunks(X, mask, batch_size, device):
            with torch.no_grad():
                z0 = init(x, m)
                problem = _ChunkProblem(decoder, x, m, loss, penalty)
                z, steps, done, *flags = solve(problem, z0, max_iter=max_iter, learning_rate=learning_rate, tol=tol)
            latents.append(z)
            n_iter.append(steps)
            converged.append(done)
            overshot.append(flags[0] if flags else torch.zeros_like(done))
    if not latents:  # no rows
        empty = torch.zeros(0, dtype=torch.long, device=device)
        return InferenceResult(X.new_zeros(0, 0).to(device), empty, empty.bool(), empty.bool())
    return InferenceResult(torch.cat(latents), torch.cat(n_iter), torch.cat(converged), torch.cat(overshot))


def _chunks(X, mask, batch_size, device):
    """``(x, mask)`` slices of ``batch_size`` rows, moved to ``device``."""
    for start in range(0, len(X), batch_size):
        x = X[start : start + batch_size].to(device)
        m = None if mask is None else mask[start : start + batch_size].to(device)
        yield x, m


def pairwise_losses(x, mask, references, loss):
    """Loss of every sample against every reference reconstruction.

    The masked per-sample loss of :func:`~._losses.sample_losses`, for all
    pairs at once, written as matrix products (no per-pair tensor of
    n_features values). For "bce" the references are probabilities (logs
    clamped at -100): this only ranks candidate starts.

    Parameters
    ----------
    x : torch.Tensor of shape (n_samples, n_features)
        Samples; entries where ``mask`` is False are ignored.
    mask : torch.Tensor of bool of the same shape, or None
        True where an entry is observed.
    references : torch.Tensor of shape (n_references, n_features)
        Reconstructions to compare with.
    loss : str or Likelihood

    Returns
    -------
    losses : torch.Tensor of shape (n_samples, n_references)
    """
    return get_likelihood(loss).pairwise(x, mask, references)


def nearest_latents(x, mask, references, latents, loss):
    """The latent whose reconstruction best fits each sample's observed entries.

    Parameters
    ----------
    x, mask : torch.Tensor
        A chunk of samples and its observed-entry mask (or None).
    references : torch.Tensor of shape (n_references, n_features)
        Decoded training latents, in x's dtype and on its device.
    latents : torch.Tensor of shape (n_references, n_components)
        The training latents they decode.
    loss : str or Likelihood

    Returns
    -------
    z0 : torch.Tensor of shape (n_samples, n_components)
        A copy of the best training latent of each row.
    """
    best = pairwise_losses(x, mask, references, loss).argmin(dim=1)
    return latents[best].clone()


@torch.no_grad()
def decode_in_chunks(decoder, Z, batch_size, device):
    """``decoder(Z)`` in eval mode, ``batch_size`` rows at a time, on ``device``."""
    with frozen(decoder):
        return torch.cat([decoder(z) for z, _ in _chunks(Z, None, batch_size, device)])
