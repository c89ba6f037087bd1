import torch
import torch.nn.functional as F

from impasto.losses import ContentLoss, GramStyleLoss, LaplacianLoss, TVLoss, blend_grams, gram_matrix


def test_gram_is_divided_by_positions_and_resolution_independent():
    f = torch.rand(1, 8, 6, 5)
    g = gram_matrix(f)
    flat = f.reshape(8, 30)
    assert torch.allclose(g[0], flat @ flat.T / 30)
    # Repeating every position (a 2x nearest upsampling) leaves the Gram matrix unchanged.
    assert torch.allclose(gram_matrix(F.interpolate(f, scale_factor=2)), g, atol=1e-6)


def test_content_loss_is_relative_squared_error():
    target = torch.rand(1, 4, 5, 5) + 0.5
    loss = ContentLoss(target)
    assert float(loss(target)) == 0
    assert abs(float(loss(torch.zeros_like(target))) - 1.0) < 1e-6
    assert torch.isclose(loss(2 * target), torch.tensor(1.0))


def test_style_loss_is_relative_gram_error():
    feats = torch.rand(1, 4, 7, 7)
    loss = GramStyleLoss.from_features([feats])
    assert float(loss(feats)) < 1e-10
    assert abs(float(loss(torch.zeros_like(feats))) - 1.0) < 1e-5
    # Same statistics at another resolution: no loss.
    assert float(loss(F.interpolate(feats, scale_factor=3))) < 1e-8


def test_blended_style_targets():
    a, b = torch.rand(1, 3, 4, 4), torch.rand(1, 3, 4, 4)
    g = blend_grams([gram_matrix(a), gram_matrix(b)], [3, 1])
    assert torch.allclose(g, 0.75 * gram_matrix(a) + 0.25 * gram_matrix(b))
    only_a = GramStyleLoss.from_features([a, b], [1, 0])
    assert float(only_a(a)) < 1e-10


def test_tv_loss():
    assert float(TVLoss()(torch.ones(1, 3, 8, 8))) == 0
    x = torch.zeros(1, 1, 2, 2)
    x[..., 0, 0] = 1
    # dx: one of two horizontal pairs differs by 1; dy: one of two vertical pairs; scaled by 2 / 512.
    assert abs(float(TVLoss()(x)) - (0.5 + 0.5) * 2 / 512) < 1e-9


def test_laplacian_loss_ignores_restyled_flat_areas_and_sees_a_rim_along_an_edge():
    photo = torch.zeros(1, 3, 32, 32)
    photo[..., :, 16:] = 0.8  # a dark-light edge
    lap = LaplacianLoss()
    assert float(lap(photo, photo)) == 0
    # Another colour and a smooth shading over the whole picture: the edge's second derivative is unchanged.
    recoloured = photo * torch.tensor([0.5, 1.0, 1.2])[:, None, None] + 0.1
    ramp = photo + torch.linspace(0, 0.2, 32)[None, None, None, :]
    assert float(lap(recoloured, photo)) < 0.03 * float(lap(photo, torch.zeros_like(photo)))
    assert float(lap(ramp, photo)) < 1e-9
    # A light rim drawn along the dark side of the edge (a halo) costs; the target's Laplacians can be given once.
    halo = photo.clone()
    halo[..., :, 12:16] = 0.5
    want = lap.laplacians(photo)
    assert float(lap(halo, want)) == float(lap(halo, photo)) > 0.1 * float(lap(photo, torch.zeros_like(photo)))
    halo.requires_grad_(True)
    lap(halo, want).backward()
    assert halo.grad[..., 12:16].abs().sum() > 0


def test_tv_loss_of_the_same_picture_does_not_depend_on_resolution():
    x = torch.zeros(1, 3, 32, 32)
    x[..., :, 16:] = 1  # a vertical edge
    x[..., 20:, :] = 0.5
    small = float(TVLoss()(x))
    large = float(TVLoss()(F.interpolate(x, scale_factor=4)))
    assert abs(large / small - 1) < 0.1


def test_mean_cov_loss_is_a_relative_wasserstein_distance():
    from impasto.losses import MeanCovStyleLoss

    torch.manual_seed(0)
    feats = torch.rand(1, 6, 9, 9)
    loss = MeanCovStyleLoss.from_features([feats])
    assert float(loss(feats)) < 1e-4
    # Resolution-independent: the same statistics at 3x the positions.
    assert float(loss(F.interpolate(feats, scale_factor=3))) < 1e-4
    # A pure shift of the mean costs |shift|^2 / E|x|^2.
    shifted = feats + 0.5
    expected = 6 * 0.25 / float(feats.pow(2).sum(1).mean())
    assert abs(float(loss(shifted)) - expected) < 1e-3
    # Gradients are finite.
    x = torch.rand(1, 6, 9, 9, requires_grad=True)
    loss(x).backward()
    assert torch.isfinite(x.grad).all()
    # Blend of two styles: moment-matched mixture; weight 0 on one equals the other alone.
    other = torch.rand(1, 6, 5, 5) * 2
    assert float(MeanCovStyleLoss.from_features([feats, other], [1, 0])(feats)) < 1e-4


def test_masked_statistics_weight_positions():
    from impasto.losses import mean_cov

    f = torch.rand(1, 5, 6, 8)
    ones = torch.ones(1, 1, 6, 8)
    assert torch.allclose(gram_matrix(f, ones), gram_matrix(f), atol=1e-6)
    left = torch.zeros(1, 1, 6, 8)
    left[..., :4] = 1
    assert torch.allclose(gram_matrix(f, left), gram_matrix(f[..., :4]), atol=1e-6)
    mu, cov = mean_cov(f, left)
    mu_ref, cov_ref = mean_cov(f[..., :4])
    assert torch.allclose(mu, mu_ref, atol=1e-6) and torch.allclose(cov, cov_ref, atol=1e-6)


def test_mean_cov_matches_a_direct_computation_in_any_memory_layout():
    from impasto.losses import mean_cov

    torch.manual_seed(1)
    f = torch.randn(1, 7, 5, 6) * 2 + 1
    mask = torch.rand(1, 1, 5, 6)
    flat = f.reshape(7, 30).double()  # channels by positions
    for m in (None, mask):
        w = torch.full((30,), 1 / 30, dtype=torch.float64) if m is None else m.reshape(30).double() / m.sum()
        mu_ref = flat @ w
        cov_ref = ((flat - mu_ref[:, None]) * w) @ (flat - mu_ref[:, None]).T
        for layout in (torch.contiguous_format, torch.channels_last):
            mu, cov = mean_cov(f.contiguous(memory_format=layout), m)
            assert mu.dtype == cov.dtype == torch.float32
            assert torch.allclose(mu.double(), mu_ref, atol=1e-5)
            assert torch.allclose(cov.double(), cov_ref, atol=1e-5)
    # The gradient flowing back into channels_last features is channels_last too (as the conv path's is).
    x = f.contiguous(memory_format=torch.channels_last).requires_grad_(True)
    features = x * 2  # a non-leaf, like a VGG activation: the hook sees the gradient exactly as produced
    layouts = []
    features.register_hook(lambda g: layouts.append(g.is_contiguous(memory_format=torch.channels_last)))
    mu, cov = mean_cov(features)
    (mu.sum() + cov.pow(2).sum()).backward()
    assert layouts == [True]


def test_gram_and_covariance_gradients_match_plain_autograd():
    """The one-product backward of x^T x gives autograd's gradient, with and without masks, in any layout."""
    from impasto.losses import mean_cov, transposed_product

    torch.manual_seed(0)
    assert torch.autograd.gradcheck(
        transposed_product, (torch.randn(2, 7, 5, dtype=torch.float64, requires_grad=True),)
    )
    assert torch.autograd.gradcheck(transposed_product, (torch.randn(9, 4, dtype=torch.float64, requires_grad=True),))
    base = torch.randn(1, 6, 5, 4, dtype=torch.float64)
    mask = torch.rand(1, 1, 5, 4, dtype=torch.float64)
    weight = torch.randn(6, 6, dtype=torch.float64)

    def reference(f, m):
        flat = f.reshape(6, 20)
        m = torch.ones(20, dtype=f.dtype) if m is None else m.reshape(20)
        mu = flat @ m / m.sum()
        centred = flat - mu[:, None]
        return (flat * m) @ flat.T / m.sum(), mu, (centred * m) @ centred.T / m.sum()

    for m in (None, mask):
        for layout in (torch.contiguous_format, torch.channels_last):
            f = base.clone().contiguous(memory_format=layout).requires_grad_(True)
            gram = gram_matrix(f, m)[0].double()
            mu, cov = mean_cov(f, m)
            ours = torch.autograd.grad(((gram + cov.double()) * weight).sum() + mu.double().sum(), f)[0]
            g_ref, mu_ref, cov_ref = reference(f, m)
            theirs = torch.autograd.grad(((g_ref + cov_ref) * weight).sum() + mu_ref.sum(), f)[0]
            assert torch.allclose(gram, g_ref, atol=1e-5) and torch.allclose(cov.double(), cov_ref, atol=1e-5)
            assert torch.allclose(ours, theirs, atol=1e-5)
