"""Our L-BFGS against torch.optim.LBFGS (the iteration it replaces) and on a problem with a known minimum."""

import torch

from impasto.methods.gatys.lbfgs import LBFGS


def _problem(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(20, 20, generator=g)
    hessian = a @ a.T + 0.5 * torch.eye(20)
    b = torch.randn(20, generator=g)
    return hessian, b


def _loss(x, hessian, b):
    return 0.5 * x @ hessian @ x - b @ x + 0.1 * (x**4).sum()


def test_same_iterates_as_torch_lbfgs():
    hessian, b = _problem()
    x1 = torch.zeros(20, requires_grad=True)
    x2 = torch.zeros(20, requires_grad=True)
    ours = LBFGS(x1, lr=0.5, history_size=5)
    theirs = torch.optim.LBFGS([x2], lr=0.5, max_iter=1, history_size=5)

    def closure1():
        loss = _loss(x1, hessian, b)
        loss.backward()
        return loss

    def closure2():
        theirs.zero_grad()
        loss = _loss(x2, hessian, b)
        loss.backward()
        return loss

    for _ in range(25):
        ours.step(closure1)
        theirs.step(closure2)
        assert torch.allclose(x1, x2, atol=1e-5, rtol=1e-4)
    assert len(ours.s) == 5  # the history is capped


def test_converges_and_a_known_curvature_scale_skips_the_probe():
    hessian, b = _problem(1)
    b = 50 * b  # a large gradient, as over the pixels of an image: torch's first step, 1 / |g|_1, is then tiny
    exact = torch.linalg.solve(hessian, b)
    quadratic = lambda x: 0.5 * x @ hessian @ x - b @ x  # noqa: E731

    def run(h0, steps):
        x = torch.zeros(20, requires_grad=True)
        opt = LBFGS(x, history_size=20, h0=h0)

        def closure():
            loss = quadratic(x)
            loss.backward()
            return loss

        for _ in range(steps):
            opt.step(closure)
        return x.detach(), opt

    x, opt = run(None, 60)
    assert torch.allclose(x, exact, atol=1e-3)
    # With the curvature scale of an earlier run, the first step is a real step, not a probe.
    start = quadratic(torch.zeros(20))
    probe, _ = run(None, 1)
    real, _ = run(opt.h0, 1)
    assert start - quadratic(real) > 3 * (start - quadratic(probe))
