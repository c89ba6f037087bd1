"""Exporting networks for serving elsewhere: ONNX (optionally int8) and TorchScript, checked against PyTorch.

Today: the fast per-style networks (a built-in style's name, ``builtin`` for the whole gallery, or a model file from
``impasto train fast``). The exported graph is the network's own ``forward``: inputs ``image`` (1, 3, H, W) RGB in
[0, 1] with H and W any multiple-of-4-friendly size of at least 8 px (the graph reflects up to a multiple of 4 and
crops back), ``style`` (1, n_styles) blend weights and ``layers`` (1, 4) per-layer style weights; output
``stylized`` (1, 3, H + pad, W + pad), to crop to (H, W).

A fast-network file with a style predictor (``impasto train fast-arbitrary``) also gets, in the cache only, the two
graphs that paint style images (:func:`cached_arbitrary_graphs`).

The arbitrary-style model (``adain`` or ``adain:FILE``) exports as one graph: inputs ``content`` (1, 3, H, W),
``style`` (1, 3, h, w), ``strength`` (1,); output ``stylized`` (1, 3, H, W), before the tone step.

int8 uses onnxruntime's static quantization (QDQ, per-channel weights, uint8 activations) of the convolutions only,
calibrated on photos (by default the bundled examples); the convolutions next to a picture (the first after each
image input, the last before each output) stay in fp32, where quantization shows most (colour banding, edge noise).
Quantizing the other operations too (AdaIN's statistics, the norms) turned the VGG-19 model's skies magenta.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .errors import ImpastoError

FORMATS = ("onnx", "torchscript")
OPSET = 17
TOLERANCE = 1e-3  # largest difference allowed between the exported graph's output and PyTorch's (fp32, RGB in [0, 1])


# One export into the cache at a time in a process: torch.onnx.export keeps global state (two threads exporting at
# once fail with "GLOBALS.in_onnx_export must be False"), and the temporary files are named by the process.
_EXPORTING = threading.RLock()


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


def _export_adain(spec: str, out: Path, fmt: str, int8: bool = False, calibration: Sequence[Any] = ()) -> dict:
    import warnings

    import torch

    graph = _adain_net(spec)
    if fmt == "torchscript":
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.jit.trace(graph, _adain_example(), check_trace=False).save(str(out))
    else:
        _write_onnx(
            graph,
            _adain_example(),
            out,
            input_names=["content", "style", "strength"],
            output_names=["stylized"],
            dynamic_axes={
                "content": {2: "height", 3: "width"},
                "style": {2: "style_height", 3: "style_width"},
                "stylized": {2: "height", 3: "width"},
            },
        )
    feeds = []
    if int8:
        pictures = [_calibration_array(p) for p in calibration or example_pictures()]
        strength = np.ones(1, np.float32)
        feeds = [
            {"content": c, "style": pictures[(i + 1) % len(pictures)], "strength": strength}
            for i, c in enumerate(pictures)
        ]
        _quantize(out, feeds)
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
    report: dict[str, Any] = {"max_difference": worst, "styles": ["any painting (the 'style' input)"]}
    if feeds:
        diffs = []
        for feed in feeds:
            with torch.no_grad():
                ref = graph(*(torch.from_numpy(feed[k]) for k in ("content", "style", "strength"))).numpy()
            diffs.append(float(np.abs(run(feed["content"], feed["style"], feed["strength"]) - ref).mean()))
        report["mean_difference_on_photos"] = float(np.mean(diffs))
    return report


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
        try:
            report = {"model": model, "format": fmt, "int8": int8, **_export_adain(model, tmp, fmt, int8, calibration)}
            report["bytes"] = tmp.stat().st_size
            if not int8 and report["max_difference"] > TOLERANCE:
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
                calibration = calibration or example_pictures()
                _quantize(tmp, _fast_feeds(calibration, len(m.names)))
        report = {"model": model, "format": fmt, "int8": int8, "styles": m.names, "bytes": tmp.stat().st_size}
        report.update(check(tmp, fmt, m, calibration if int8 else ()))
        if not int8 and report["max_difference"] > TOLERANCE:
            raise ImpastoError(
                f"the exported model differs from PyTorch by {report['max_difference']:.2g} (more than {TOLERANCE})"
            )
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    report["output"] = str(out)
    return report


def _export_onnx(net, m, path: Path) -> None:
    _write_onnx(
        net,
        _example(m),
        path,
        input_names=["image", "style", "layers"],
        output_names=["stylized"],
        dynamic_axes={"image": {2: "height", 3: "width"}, "stylized": {2: "height", 3: "width"}},
    )


def _write_onnx(module, args: tuple, path: Path, **names: Any) -> None:
    """`module` traced on `args` into an ONNX file at `path` (opset OPSET; `names`: input_names, output_names,
    dynamic_axes), with what depends only on the weights computed in the file."""
    import warnings

    import torch

    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the tracer's notes on shapes it records as they are meant
        torch.onnx.export(module, args, str(path), opset_version=OPSET, dynamo=False, **names)
    _fold_constants(path)


def _fold_constants(path: Path) -> None:
    """Replace the ONNX graph at `path` by the same graph with its constant parts computed (onnxruntime's basic,
    portable optimizations: standard operators only). The 2x2-block layers (:mod:`impasto.nets.blocks`) build their
    kernels from the weights inside the graph, which torch's exporter leaves as operations: folded, they are stored
    weights again, as other runtimes and int8 quantization (per-channel weights) expect."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    folded = path.with_name(f".{path.name}.folded")
    options.optimized_model_filepath = str(folded)
    try:
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        os.replace(folded, path)
    finally:
        folded.unlink(missing_ok=True)


CALIBRATION_SIZE = 256  # longest side of the calibration pictures


def example_pictures() -> list[Any]:
    """The bundled example photo and painting, each also mirrored: int8's calibration when none is given (the
    VGG-19 AdaIN model calibrated on them measured as when calibrated on 16 training pairs, 2026-12-04)."""
    from PIL import ImageOps

    from .core.image import load_image

    folder = Path(__file__).parent / "examples"
    pictures = [load_image(folder / name) for name in ("chelsea.png", "swirls.png")]
    return pictures + [ImageOps.mirror(p) for p in pictures]


def _calibration_array(picture: Any, side: int = CALIBRATION_SIZE) -> np.ndarray:
    """(1, 3, H, W) float32 in [0, 1] with its longest side at `side`, sides a multiple of 4."""
    from .core.image import as_pil, fit_longest_side

    im = fit_longest_side(as_pil(picture).convert("RGB"), side)
    w, h = im.size
    im = im.crop((0, 0, w - w % 4, h - h % 4))
    return np.ascontiguousarray(np.asarray(im, dtype=np.float32).transpose(2, 0, 1)[None] / 255)


def _fast_feeds(photos: Sequence[Any], n_styles: int) -> list[dict[str, np.ndarray]]:
    """The fast networks' calibration feeds: each photo with one of the styles in turn."""
    feeds = []
    for i, p in enumerate(photos):
        style = np.zeros((1, n_styles), np.float32)
        style[0, i % n_styles] = 1
        feeds.append({"image": _calibration_array(p), "style": style, "layers": np.ones((1, 4), np.float32)})
    return feeds


class _Feeds:
    """onnxruntime's calibration reader over a list of feeds."""

    def __init__(self, feeds: Sequence[dict[str, np.ndarray]]) -> None:
        self._it = iter(feeds)

    def get_next(self):
        return next(self._it, None)


def edge_convs(model: Any) -> list[str]:
    """Names of the convolutions next to a picture in an ONNX graph: the first reached from each image input (3
    channels) and the last before each output, through any other operations."""
    from collections import defaultdict

    nodes = list(model.graph.node)
    consumers: dict[str, list] = defaultdict(list)
    producers = {}
    for n in nodes:
        for t in n.input:
            consumers[t].append(n)
        for t in n.output:
            producers[t] = n

    def is_image(value) -> bool:
        dims = value.type.tensor_type.shape.dim
        return len(dims) == 4 and dims[1].dim_value == 3

    found: set[str] = set()
    for forward, starts in (
        (True, [v.name for v in model.graph.input if is_image(v)]),
        (False, [v.name for v in model.graph.output]),
    ):
        stack, seen = list(starts), set()
        while stack:
            tensor = stack.pop()
            nexts = consumers.get(tensor, []) if forward else [producers[tensor]] if tensor in producers else []
            for n in nexts:
                if n.name in seen:
                    continue
                seen.add(n.name)
                if n.op_type == "Conv":
                    found.add(n.name)
                else:
                    stack.extend(n.output if forward else n.input)
    return sorted(found)


def _quantize(path: Path, feeds: Sequence[dict[str, np.ndarray]]) -> None:
    """Replace the fp32 graph at `path` by its int8 version calibrated on `feeds` (see the module's notes)."""
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    fp32 = path.with_name(path.name + ".fp32")
    os.replace(path, fp32)
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # onnxruntime's advice to pre-process, printed on every call
    try:
        quantize_static(
            str(fp32),
            str(path),
            _Feeds(feeds),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            op_types_to_quantize=["Conv"],
            nodes_to_exclude=edge_convs(onnx.load(str(fp32))),
        )
    finally:
        root.setLevel(level)
        fp32.unlink(missing_ok=True)


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
        for feed in _fast_feeds(photos, len(m.names)):
            with torch.no_grad():
                ref = m.net(*(torch.from_numpy(feed[k]) for k in ("image", "style", "layers"))).numpy()
            diffs.append(float(np.abs(exported(feed["image"], feed["style"], feed["layers"]) - ref).mean()))
        out["mean_difference_on_photos"] = float(np.mean(diffs))
    return out


def _export_adain_parts(spec: str, code_path: Path, transfer_path: Path) -> float:
    """The arbitrary-style model as two graphs, style code and transfer (for runtimes that encode a painting once);
    returns their combined largest difference to the whole model in PyTorch."""

    import onnxruntime as ort
    import torch

    from .nets.adain import AdaINCodeGraph, AdaINTransferGraph

    graph = _adain_net(spec)
    content, style, strength = _adain_example()
    with torch.no_grad():
        mean, std = graph.code(style)
    _write_onnx(
        AdaINCodeGraph(graph),
        (style,),
        code_path,
        input_names=["style"],
        output_names=["mean", "std"],
        dynamic_axes={"style": {2: "style_height", 3: "style_width"}},
    )
    _write_onnx(
        AdaINTransferGraph(graph),
        (content, mean, std, strength),
        transfer_path,
        input_names=["content", "mean", "std", "strength"],
        output_names=["stylized"],
        dynamic_axes={"content": {2: "height", 3: "width"}, "stylized": {2: "height", 3: "width"}},
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


INT8_TOLERANCE = 0.05  # mean difference (RGB in [0, 1]) allowed between the int8 and fp32 models' pictures


def cached_adain_parts(decoder: str | os.PathLike, int8: bool = False) -> tuple[Path, Path]:
    """The (style code, transfer) ONNX graphs of an AdaIN decoder file (or compact model), exported into the cache
    the first time and checked against PyTorch then (see :func:`cached_graph`); with `int8`, their int8 versions
    (calibrated on the bundled examples, checked against fp32)."""
    from .core.cache import graph_path, remove_older_layouts

    def export_parts(code: Path, transfer: Path) -> None:
        worst = _export_adain_parts(f"adain:{decoder}", code, transfer)
        if worst > TOLERANCE:
            raise ImpastoError(f"the exported model differs from PyTorch by {worst:.2g}")

    paths = graph_path("adain-code", decoder), graph_path("adain-transfer", decoder)
    with _EXPORTING:
        if not all(p.exists() for p in paths):
            _write_together(paths, export_parts)
            for p in paths:
                remove_older_layouts(p)
        if not int8:
            return paths
        quantized = graph_path("adain-code-int8", decoder), graph_path("adain-transfer-int8", decoder)
        if not all(p.exists() for p in quantized):
            _write_together(quantized, lambda code, transfer: _quantize_adain_parts(paths, code, transfer))
            for p in quantized:
                remove_older_layouts(p)
        return quantized


def _write_together(paths: Sequence[Path], make: Any) -> None:
    """`make(*temporary_paths)`, then each renamed into place: all the files appear, or none (nor a stray tmp)."""
    paths[0].parent.mkdir(parents=True, exist_ok=True)
    tmps = [p.with_name(f".{p.name}.{os.getpid()}.tmp") for p in paths]
    try:
        make(*tmps)
        for tmp, path in zip(tmps, paths):
            os.replace(tmp, path)
    finally:
        for tmp in tmps:
            tmp.unlink(missing_ok=True)


def _quantize_adain_parts(fp32: tuple[Path, Path], code_out: Path, transfer_out: Path) -> None:
    """int8 versions of the (code, transfer) graphs, calibrated on the bundled examples and checked against fp32."""
    import shutil

    import onnxruntime as ort

    def sessions(paths):
        return [ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]) for p in paths]

    pictures = [_calibration_array(p) for p in example_pictures()]
    strength = np.ones(1, np.float32)
    code, transfer = sessions(fp32)
    styles = pictures[1:] + pictures[:1]
    feeds = []
    for content, style in zip(pictures, styles):
        mean, std = code.run(None, {"style": style})
        feeds.append({"content": content, "mean": mean, "std": std, "strength": strength})
    for src, dst in zip(fp32, (code_out, transfer_out)):
        shutil.copyfile(src, dst)
    _quantize(code_out, [{"style": p} for p in pictures])
    _quantize(transfer_out, feeds)
    code8, transfer8 = sessions((code_out, transfer_out))
    diffs = []
    for feed, style in zip(feeds, styles):
        mean, std = code8.run(None, {"style": style})
        int8_out = transfer8.run(None, {**feed, "mean": mean, "std": std})[0]
        diffs.append(np.abs(int8_out - transfer.run(None, feed)[0]).mean())
    diff = float(np.mean(diffs))
    if diff > INT8_TOLERANCE:
        raise ImpastoError(f"the int8 model differs from fp32 by {diff:.3f} on average: use --precision fp32")


def cached_graph(source: str | os.PathLike) -> Path:
    """The ONNX graph of a fast-network model file, exported into the cache the first time and checked against
    PyTorch then; named by the file's content, so a changed file is exported again."""
    from .core.cache import graph_path, remove_older_layouts

    path = graph_path("fast", source)
    with _EXPORTING:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            export(str(source), path, "onnx")
            remove_older_layouts(path)
    return path


def cached_arbitrary_graphs(
    source: str | os.PathLike, int8: bool = False, make: bool = True
) -> tuple[Path, Path] | None:
    """The two ONNX graphs that paint style images with a fast-network file that has a style predictor, exported into
    the cache the first time and checked against PyTorch then: ``painting`` (1, 3, h, w) -> ``embedding`` (1, 32), and
    ``image``, ``embeddings`` (k, 32), ``weights`` (k,), ``layers`` (1, 4) -> ``stylized`` (as the named styles' graph,
    to crop). With `int8`, the painting's graph (VGG-19 up to relu4_1) in int8, calibrated on the bundled examples
    and checked against fp32, where it is cached or can be made (the `onnx` package; else the fp32 graph); the
    painting network stays fp32 (the lean fast network is slower in int8). With `make` False, only graphs already in
    the cache: None where one of those a run would use is still to be made (that needs PyTorch)."""
    import importlib.util

    from .core.cache import graph_path, remove_older_layouts

    code, paint = graph_path("fast-code", source), graph_path("fast-paint", source)
    with _EXPORTING:
        if not (code.exists() and paint.exists()):
            if not make:
                return None
            code.parent.mkdir(parents=True, exist_ok=True)
            _export_arbitrary(source, code, paint)
            for p in (code, paint):
                remove_older_layouts(p)
        code8 = graph_path("fast-code-int8", source)
        if not int8 or not (code8.exists() or importlib.util.find_spec("onnx") is not None):
            return code, paint
        if not code8.exists():
            if not make:
                return None
            from .methods.fast import stats_size

            _write_together([code8], lambda tmp: _quantize_painting_code(code, tmp, stats_size(source)))
            remove_older_layouts(code8)
    return code8, paint


EMBEDDING_INT8_TOLERANCE = 0.05  # relative (L2) difference allowed between the int8 and fp32 painting embeddings


def _quantize_painting_code(fp32: Path, out: Path, side: int) -> None:
    """The int8 version of a painting -> embedding graph, calibrated on the bundled examples read at `side` px (as
    the model reads paintings) and checked against fp32 on them."""
    import shutil

    import onnxruntime as ort

    pictures = [_calibration_array(p, side) for p in example_pictures()]
    shutil.copyfile(fp32, out)
    _quantize(out, [{"painting": p} for p in pictures])
    ref, got = (ort.InferenceSession(str(f), providers=["CPUExecutionProvider"]) for f in (fp32, out))
    for p in pictures:
        a, b = (s.run(None, {"painting": p})[0] for s in (ref, got))
        diff = float(np.linalg.norm(a - b) / max(float(np.linalg.norm(a)), 1e-8))
        if diff > EMBEDDING_INT8_TOLERANCE:
            raise ImpastoError(f"the int8 painting encoder differs from fp32 by {diff:.3f}: use --precision fp32")


def _export_arbitrary(source: str | os.PathLike, code_path: Path, paint_path: Path) -> None:
    import torch

    from .core.weights import load_weights
    from .methods.fast.model import load_model
    from .nets.fast import STYLE_LAYERS, EmbeddingPainter, PaintingEmbedding
    from .nets.vgg import VGGFeatures

    m = load_model(source)
    if m.net.predictor is None:
        raise ImpastoError(f"model {source} has no style predictor: it paints only its own paintings")
    net = m.net.float().eval()
    features = VGGFeatures(load_weights(m.recipe.get("weights")), STYLE_LAYERS).eval()
    code, paint = PaintingEmbedding(features, net.predictor).eval(), EmbeddingPainter(net).eval()
    g = torch.Generator().manual_seed(0)
    painting = torch.rand(1, 3, 72, 80, generator=g)
    image = torch.rand(1, 3, 64, 96, generator=g)
    embeddings, weights, layers = torch.randn(2, 32, generator=g), torch.tensor([1.0, 0.5]), torch.ones(1, 4)
    tmp_code, tmp_paint = (p.with_name(f".{p.name}.tmp{os.getpid()}") for p in (code_path, paint_path))
    try:
        _write_onnx(
            code,
            (painting,),
            tmp_code,
            input_names=["painting"],
            output_names=["embedding"],
            dynamic_axes={"painting": {2: "height", 3: "width"}},
        )
        _write_onnx(
            paint,
            (image, embeddings, weights, layers),
            tmp_paint,
            input_names=["image", "embeddings", "weights", "layers"],
            output_names=["stylized"],
            dynamic_axes={
                "image": {2: "height", 3: "width"},
                "embeddings": {0: "paintings"},
                "weights": {0: "paintings"},
                "stylized": {2: "height", 3: "width"},
            },
        )
        import onnxruntime as ort

        sessions = [ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]) for p in (tmp_code, tmp_paint)]
        worst = 0.0
        # Another painting size, a single painting: the graphs must not have kept the example's shapes.
        for p, x, k in ((painting, image, 2), (torch.rand(1, 3, 50, 37, generator=g), image[..., :45, :70], 1)):
            with torch.no_grad():
                e = code(p)
                ref = paint(x, torch.cat([e, embeddings[1:k]]), weights[:k], layers).numpy()
            e_ort = sessions[0].run(None, {"painting": p.numpy()})[0]
            feed = {
                "image": x.numpy(),
                "embeddings": np.concatenate([e_ort, embeddings[1:k].numpy()]),
                "weights": weights[:k].numpy(),
                "layers": layers.numpy(),
            }
            got = sessions[1].run(None, feed)[0]
            if got.shape != ref.shape:
                raise ImpastoError(f"the exported model gives {got.shape}, PyTorch {ref.shape}")
            worst = max(worst, float(np.abs(got - ref).max()))
        if worst > TOLERANCE:
            raise ImpastoError(f"the exported style-image graphs differ from PyTorch by {worst:.2g}")
        os.replace(tmp_code, code_path)
        os.replace(tmp_paint, paint_path)
    finally:
        tmp_code.unlink(missing_ok=True)
        tmp_paint.unlink(missing_ok=True)
