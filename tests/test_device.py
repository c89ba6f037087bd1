import pytest
import torch

from impasto.core.device import resolve_device
from impasto.errors import ImpastoError


def test_auto_prefers_cuda_then_mps_then_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr("impasto.core.device._mps_available", lambda: False)
    assert resolve_device("auto").type == "cpu"
    monkeypatch.setattr("impasto.core.device._mps_available", lambda: True)
    assert resolve_device("auto").type == "mps"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto").type == "cuda"


def test_missing_devices_are_one_line_errors(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr("impasto.core.device._mps_available", lambda: False)
    for name in ("cuda", "mps"):
        with pytest.raises(ImpastoError, match=f"--device {name}"):
            resolve_device(name)
    with pytest.raises(ImpastoError, match="unknown device"):
        resolve_device("tpu")
    assert resolve_device("cpu").type == "cpu"
