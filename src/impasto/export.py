"""Exporting networks for serving elsewhere: ONNX (optionally int8) and TorchScript, checked against PyTorch.

Today: the fast per-style networks (a built-in style's name, ``builtin`` for the whole gallery, or a model file from
``impasto train fast``). The exported graph is the network's own ``forward``: inputs ``image`` (1, 3, H, W) RGB in
[0, 1] with H and W any multiple-of-4-friendly size of at least 8 px (the graph reflects up to a multiple of 4 and
crops back), ``style`` (1, n_styles) blend weights and ``layers`` (1, 4) per-layer style weights; output
``stylized`` (1, 3, H + pad, W + pad), to crop to (H, W).

int8 uses onnxruntime's static quantization (QDQ, per-channel weights, uint8 activations) calibrated on photos; the
first and last convolutions stay in fp32, where quantization shows most (colour banding, edge noise).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .errors import ImpastoError

FORMATS = ("onnx", "torchscript")
OPSET = 17
TOLERANCE = 1e-3  # largest difference allowed between the exported graph's output and PyTorch's (fp32, RGB in [0, 1])


def _fast_model(spec: str):
    from .methods.fast import builtin_path, parse_model
    from .methods.fast.model import load_model

    if spec == "builtin":
        return load_model(builtin_path())
    path = Path(spec)
    if path.suffix == ".safetensors" or path.is_file():
        return load_model(path)
    return load_model(parse_model(spec)[0][0])


def _example(model, size: tuple[int, int] = (64, 96)):
    import torch

    n = len(model.names)
    image = torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(0))
    style = torch.zeros(1, n)
    style[0, 0] = 1.0
    return image, style, torch.ones(1, 4)


def _adain_net(spec: str):
    """The arbitrary-style model: ``adain`` (the bundled decoder) or ``adain:DECODER_FILE`` (a decoder, or a compact
    model with its own encoder)."""
    from .methods.adain.engine import encoder_for, load_decoder
    from .nets.adain import AdaINGraph, AdaINNet

    path = spec.split(":", 1)[1] if ":" in spec else None
    decoder = load_decoder(path)
    net = AdaINNet(encoder_for(decoder), decoder)
    return AdaINGraph(net).eval()


def _adain_example(size: tuple[int, int] = (64, 96)):
    import torch

    g = torch.Generator().manual_seed(0)
    return torch.rand(1, 3, *size, generator=g), torch.rand(1, 3, 80, 72, generator=g), torch.tensor([1.0])


def _export_adain(spec: str, out: Path, fmt: str) -> dict[str, Any]:
    import warnings

    import torch

    graph = _adain_net(spec)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        if fmt == "torchscript":
            torch.jit.trace(graph, _adain_example(), check_trace=False).save(str(out))
        else:
            torch.onnx.export(
                graph,
                _adain_example(),
                str(out),
                input_names=["content", "style", "strength"],
                output_names=["stylized"],
                dynamic_axes={
                    "content": {2: "height", 3: "width"},
                    "style": {2: "style_height", 3: "style_width"},
                    "stylized": {2: "height", 3: "width"},
                },
                opset_version=OPSET,
                dynamo=False,
            )
    worst = 0.0
    if fmt == "torchscript":
        ts = torch.jit.load(str(out))
        run = lambda *a: ts(*(torch.from_numpy(x) for x in a)).detach().numpy()  # noqa: E731
    else:
        import onnxruntime as ort

        session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        run = lambda c, s, a: session.run(None, {"content": c, "style": s, "strength": a})[0]  # noqa: E731
    for size in ((64, 96), (45, 70)):
        args = [t.numpy() for t in _adain_example(size)]
        with torch.no_grad():
            ref = graph(*(torch.from_numpy(a) for a in args)).numpy()
        got = run(*args)
        if got.shape != ref.shape:
            raise ImpastoError(f"the exported model gives {got.shape} at {size}, PyTorch {ref.shape}")
        worst = max(worst, float(np.abs(got - ref).max()))
    return {"max_difference": worst, "styles": ["any painting (the 'style' input)"]}


def export(
    model: str,
    output: str | os.PathLike,
    fmt: str = "onnx",
    *,
    int8: bool = False,
    calibration: Sequence[Any] = (),
) -> dict[str, Any]:
    """Export `model` to `output`; returns what was checked (the largest difference to PyTorch at two sizes, and
    for int8 the mean difference on the calibration photos). ImpastoError for a bad request."""
    import torch

    if fmt not in FORMATS:
        raise ImpastoError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if int8 and fmt != "onnx":
        raise ImpastoError("--int8 is for --format onnx (onnxruntime's quantization)")
    out = Path(output)
    if not out.parent.is_dir():
        raise ImpastoError(f"{out}: folder {out.parent} does not exist")
    tmp = out.with_name(f".{out.name}.tmp")
    if model == "adain" or model.startswith("adain:"):
        if int8:
            raise ImpastoError("--int8 is for the fast networks today")
        try:
            report = {"model": model, "format": fmt, "int8": False, **_export_adain(model, tmp, fmt)}
            report["bytes"] = tmp.stat().st_size
            if report["max_difference"] > TOLERANCE:
                raise ImpastoError(f"the exported model differs from PyTorch by {report['max_difference']:.2g}")
            os.replace(tmp, out)
        finally:
            tmp.unlink(missing_ok=True)
        report["output"] = str(out)
        return report
    m = _fast_model(model)
    net = m.net.float().eval()
    try:
        if fmt == "torchscript":
            with torch.no_grad():
                traced = torch.jit.trace(net, _example(m), check_trace=False)
            traced.save(str(tmp))
        else:
            _export_onnx(net, m, tmp)
            if int8:
                if not calibration:
                    raise ImpastoError("--int8 needs calibration photos (--calibration FOLDER)")
                _quantize(tmp, m, calibration)
        report = {"model": model, "format": fmt, "int8": int8, "styles": m.names, "bytes": tmp.stat().st_size}
        report.update(check(tmp, fmt, m, calibration if int8 else ()))
        if not int8 and report["max_difference"] > TOLERANCE:
            raise ImpastoError(
                f"the exported model differs from PyTorch by {report['max_difference']:.2g} (more than {TOLERANCE})"
            )
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
        Path(str(tmp) + ".fp32").unlink(missing_ok=True)
    report["output"] = str(out)
    return report


def _export_onnx(net, m, path: Path) -> None:
    import warnings

    import torch

    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the tracer's notes on shapes it records as they are meant
        torch.onnx.export(
            net,
            _example(m),
            str(path),
            input_names=["image", "style", "layers"],
            output_names=["stylized"],
            dynamic_axes={"image": {2: "height", 3: "width"}, "stylized": {2: "height", 3: "width"}},
            opset_version=OPSET,
            dynamo=False,
        )


class _Calibration:
    """onnxruntime's calibration reader over photos (each at 256 px on its longest side)."""

    def __init__(self, photos: Sequence[Any], n_styles: int) -> None:
        from .core.image import as_pil, fit_longest_side

        self.feeds = []
        for i, p in enumerate(photos):
            im = fit_longest_side(as_pil(p), 256)
            w, h = im.size
            im = im.crop((0, 0, w - w % 4, h - h % 4))
            image = np.asarray(im, dtype=np.float32).transpose(2, 0, 1)[None] / 255
            style = np.zeros((1, n_styles), np.float32)
            style[0, i % n_styles] = 1
            self.feeds.append({"image": image, "style": style, "layers": np.ones((1, 4), np.float32)})
        self._it = iter(self.feeds)

    def get_next(self):
        return next(self._it, None)


def _quantize(path: Path, m, calibration: Sequence[Any]) -> None:
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    fp32 = Path(str(path) + ".fp32")
    os.replace(path, fp32)
    convs = [n.name for n in onnx.load(str(fp32)).graph.node if n.op_type == "Conv"]
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # onnxruntime's advice to pre-process, printed on every call
    try:
        _quantize_static(quantize_static, QuantFormat, QuantType, fp32, path, m, calibration, convs)
    finally:
        root.setLevel(level)


def _quantize_static(quantize_static, QuantFormat, QuantType, fp32, path, m, calibration, convs) -> None:
    quantize_static(
        str(fp32),
        str(path),
        _Calibration(calibration, len(m.names)),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        nodes_to_exclude=[convs[0], convs[-1]] if convs else [],
    )


def check(path: Path, fmt: str, m, photos: Sequence[Any] = ()) -> dict[str, float]:
    """The exported model against PyTorch: the largest difference on random pictures at two sizes (one not a multiple
    of 4), and the mean difference on `photos` when given (what int8 costs)."""
    import torch

    def run_exported():
        if fmt == "torchscript":
            ts = torch.jit.load(str(path))
            return lambda image, style, layers: ts(*(torch.from_numpy(a) for a in (image, style, layers))).numpy()
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return lambda image, style, layers: session.run(None, {"image": image, "style": style, "layers": layers})[0]

    exported = run_exported()
    worst = 0.0
    for size in ((64, 96), (37, 50)):
        image, style, layers = (t.numpy() for t in _example(m, size))
        with torch.no_grad():
            ref = m.net(*(torch.from_numpy(a) for a in (image, style, layers))).numpy()
        got = exported(image, style, layers)
        if got.shape != ref.shape:
            raise ImpastoError(f"the exported model gives {got.shape} at {size}, PyTorch {ref.shape}")
        worst = max(worst, float(np.abs(got - ref).max()))
    out = {"max_difference": worst}
    if photos:
        diffs = []
        for feed in _Calibration(photos, len(m.names)).feeds:
            with torch.no_grad():
                ref = m.net(*(torch.from_numpy(feed[k]) for k in ("image", "style", "layers"))).numpy()
            diffs.append(float(np.abs(exported(feed["image"], feed["style"], feed["layers"]) - ref).mean()))
        out["mean_difference_on_photos"] = float(np.mean(diffs))
    return out


def _export_adain_parts(spec: str, code_path: Path, transfer_path: Path) -> float:
    """The arbitrary-style model as two graphs, style code and transfer (for runtimes that encode a painting once);
    returns their combined largest difference to the whole model in PyTorch."""
    import warnings

    import onnxruntime as ort
    import torch

    from .nets.adain import AdaINCodeGraph, AdaINTransferGraph

    graph = _adain_net(spec)
    content, style, strength = _adain_example()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        mean, std = graph.code(style)
        torch.onnx.export(
            AdaINCodeGraph(graph),
            (style,),
            str(code_path),
            input_names=["style"],
            output_names=["mean", "std"],
            dynamic_axes={"style": {2: "style_height", 3: "style_width"}},
            opset_version=OPSET,
            dynamo=False,
        )
        torch.onnx.export(
            AdaINTransferGraph(graph),
            (content, mean, std, strength),
            str(transfer_path),
            input_names=["content", "mean", "std", "strength"],
            output_names=["stylized"],
            dynamic_axes={"content": {2: "height", 3: "width"}, "stylized": {2: "height", 3: "width"}},
            opset_version=OPSET,
            dynamo=False,
        )
    code = ort.InferenceSession(str(code_path), providers=["CPUExecutionProvider"])
    transfer = ort.InferenceSession(str(transfer_path), providers=["CPUExecutionProvider"])
    worst = 0.0
    for size in ((64, 96), (45, 70)):
        c, s, a = (t.numpy() for t in _adain_example(size))
        with torch.no_grad():
            ref = graph(*(torch.from_numpy(x) for x in (c, s, a))).numpy()
        m, d = code.run(None, {"style": s})
        got = transfer.run(None, {"content": c, "mean": m, "std": d, "strength": a})[0]
        if got.shape != ref.shape:
            raise ImpastoError(f"the exported model gives {got.shape} at {size}, PyTorch {ref.shape}")
        worst = max(worst, float(np.abs(got - ref).max()))
    return worst


def cached_adain_parts(decoder: str | os.PathLike) -> tuple[Path, Path]:
    """The (style code, transfer) ONNX graphs of an AdaIN decoder file (or compact model), exported into the cache
    the first time and checked against PyTorch then (see :func:`cached_graph`)."""
    from .core.cache import graph_path

    paths = graph_path("adain-code", decoder), graph_path("adain-transfer", decoder)
    if not all(p.exists() for p in paths):
        paths[0].parent.mkdir(parents=True, exist_ok=True)
        tmps = [p.with_name(f".{p.name}.{os.getpid()}.tmp") for p in paths]
        try:
            worst = _export_adain_parts(f"adain:{decoder}", *tmps)
            if worst > TOLERANCE:
                raise ImpastoError(f"the exported model differs from PyTorch by {worst:.2g}")
            for tmp, path in zip(tmps, paths):
                os.replace(tmp, path)
        finally:
            for tmp in tmps:
                tmp.unlink(missing_ok=True)
    return paths


def cached_graph(source: str | os.PathLike) -> Path:
    """The ONNX graph of a fast-network model file, exported into the cache the first time and checked against
    PyTorch then; named by the file's content, so a changed file is exported again."""
    from .core.cache import graph_path

    path = graph_path("fast", source)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        export(str(source), path, "onnx")
    return path
