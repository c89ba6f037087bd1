"""L-BFGS over one tensor, one function evaluation per step, fixed step length (no line search).

The same iteration as ``torch.optim.LBFGS(max_iter=1)``, which Gatys-style transfer has always used, written out here
for two reasons: constructing any ``torch.optim`` optimizer imports ``torch._dynamo`` (about 3 s of a 20 s run on a
2-core CPU), and coarse-to-fine runs want to carry the curvature scale (``h0``) from one scale to the next, so the
first step at a new scale is a real step instead of torch's tiny ``1 / |g|_1`` probe.
"""

from __future__ import annotations

from typing import Callable

import torch


class LBFGS:
    """Minimize ``closure()`` over ``x`` (a leaf tensor with requires_grad); call :meth:`step` once per iteration.

    ``closure`` zeroes nothing itself: :meth:`step` clears ``x.grad`` before calling it. It must return the loss
    after calling ``backward()``.
    """

    def __init__(self, x: torch.Tensor, lr: float = 1.0, history_size: int = 100, h0: float | None = None) -> None:
        if not x.requires_grad:
            raise ValueError("x must require grad")
        self.x = x
        self.lr = lr
        self.history_size = max(1, history_size)
        self.h0 = h0  # initial inverse-Hessian scale; None: probe with torch's 1 / |g|_1 first step
        self.s: list[torch.Tensor] = []  # steps taken
        self.y: list[torch.Tensor] = []  # gradient changes
        self.rho: list[float] = []
        self._prev_grad: torch.Tensor | None = None
        self._prev_step: torch.Tensor | None = None

    def step(self, closure: Callable[[], torch.Tensor]) -> torch.Tensor:
        """Evaluate the loss and its gradient at ``x``, then move ``x`` along the L-BFGS direction."""
        self.x.grad = None
        loss = closure()
        g = self.x.grad.detach().reshape(-1).float()
        if not bool(torch.isfinite(g).all()):
            return loss  # the caller sees the non-finite loss and stops; x is left where it was
        if self._prev_grad is not None and self._prev_step is not None:
            y = g - self._prev_grad
            s = self._prev_step
            ys = float(y.dot(s))
            if ys > 1e-10:  # curvature condition: otherwise the pair would make the inverse Hessian indefinite
                if len(self.s) == self.history_size:
                    self.s.pop(0), self.y.pop(0), self.rho.pop(0)
                self.s.append(s)
                self.y.append(y)
                self.rho.append(1.0 / ys)
                self.h0 = ys / float(y.dot(y))
        if float(g.abs().max()) <= 1e-7:
            return loss  # at a stationary point
        if self.h0 is None:
            # First step with no curvature known: a short probe, as torch.optim.LBFGS does.
            d = g.neg()
            t = min(1.0, 1.0 / float(g.abs().sum())) * self.lr
        else:
            d = self._direction(g)
            t = self.lr
        if float(g.dot(d)) > -1e-9:
            d, t = g.neg(), min(1.0, 1.0 / float(g.abs().sum())) * self.lr  # not a descent direction: restart
            self.s.clear(), self.y.clear(), self.rho.clear()
        step = d.mul_(t)
        with torch.no_grad():
            self.x.add_(step.view_as(self.x).to(self.x.dtype))
        self._prev_grad = g
        self._prev_step = step
        return loss

    def _direction(self, g: torch.Tensor) -> torch.Tensor:
        # Two-loop recursion (Nocedal & Wright, algorithm 7.4).
        q = g.neg()
        alphas = []
        for s, y, rho in zip(reversed(self.s), reversed(self.y), reversed(self.rho)):
            a = rho * float(s.dot(q))
            q.add_(y, alpha=-a)
            alphas.append(a)
        r = q.mul_(self.h0)
        for s, y, rho, a in zip(self.s, self.y, self.rho, reversed(alphas)):
            b = rho * float(y.dot(r))
            r.add_(s, alpha=a - b)
        return r
