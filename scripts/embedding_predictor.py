"""How well can a painting's embedding for the frozen fast network be predicted from the painting's VGG-19 statistics?

The first measurement of the arbitrary-style design in docs/MODELS.md (Ghiasi et al. 2017 on impasto's fast network):
a model file from `impasto train fast-add` holds, beside the built-in paintings, an embedding learnt for each added
painting. This script predicts each painting's embedding from the channel means and spreads of its VGG-19 relu1_1 ..
relu4_1 features (1920 numbers) by ridge regression fitted on the *other* paintings (folds by painting; copies and
crops of one artwork from different sources share a fold), then paints eight fixed photo crops with the learnt, the
predicted, the nearest painting's and the mean embedding and prints the recipe's style and content losses of each.
How far the prediction moves from the mean toward the learnt embedding is what a trained predictor can hope for.

    python scripts/embedding_predictor.py runs/add71/add71.safetensors [--folds 5] [--crops 8]
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from impasto.core.weights import load_weights  # noqa: E402
from impasto.methods.fast.model import load_model  # noqa: E402
from impasto.nets.fast import STYLE_LAYERS, painting_statistics  # noqa: E402
from impasto.nets.vgg import VGGFeatures  # noqa: E402
from impasto.train.data import ImageFolder  # noqa: E402
from impasto.train.fast.arbitrary_training import painting_views  # noqa: E402
from impasto.train.fast.trainer import FastTrainer, painting_tensor, sample_batch  # noqa: E402

# Words that mark one artwork under several file names (different sources, crops): such files share a fold.
ARTWORKS = (
    "la_muse",
    "starry_night",
    "udnie",
    "scream",
    "shipwreck",
    "wave",
    "woman-with-hat|woman_with_hat",
    "scene_de_rue|street_scene",
    "seated.nude",
    "mondrian",
    "woman_in_peasant_dress",
    "rain.princess",
    "picasso_self",
)


def artwork(name: str) -> str:
    for pattern in ARTWORKS:
        if re.search(pattern, name):
            return pattern
    return name


def paintings(model) -> list[tuple[str, Path]]:
    """(name, file) of every painting in a fast-add file: the network's own (its recipe) and the added ones."""
    files = [*model.recipe["style"]]
    for added in model.recipe.get("added", []):
        files += added["style"]
    paths = [Path(f) if Path(f).is_absolute() else ROOT / f for f in files]
    assert len(paths) == len(model.names), (len(paths), len(model.names))
    return list(zip(model.names, paths))


def statistics(vgg: VGGFeatures, picture: torch.Tensor) -> torch.Tensor:
    """Channel means and log spreads of relu1_1..relu4_1, (1920,): what the style predictor reads."""
    return painting_statistics(vgg(picture[None]))[0]


def crops(picture: torch.Tensor, n: int, g: torch.Generator) -> list[torch.Tensor]:
    """`n` random crops of 60-100 % of each side, half of them mirrored (the trainer's views, less the whole)."""
    return painting_views(picture, n + 1, g)[1:]


def ridge(x: np.ndarray, y: np.ndarray, xq: np.ndarray, lam: float) -> np.ndarray:
    """Kernel (dual) ridge regression with a linear kernel, features z-scored on the fitted rows."""
    mu, sd = x.mean(0), x.std(0) + 1e-6
    a, q = (x - mu) / sd, (xq - mu) / sd
    k = a @ a.T / a.shape[1]
    ym = y.mean(0)
    alpha = np.linalg.solve(k + lam * np.eye(len(k)), y - ym)
    return (q @ a.T / a.shape[1]) @ alpha + ym


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", type=Path)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--crops", type=int, default=8, help="augmented crops of each painting for fitting")
    ap.add_argument("--lambdas", type=float, nargs="+", default=[0.1, 1.0, 10.0, 30.0, 100.0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--eval-crops", type=int, default=8, help="photo crops the losses are measured on")
    ap.add_argument("--eval-size", type=int, default=256)
    ap.add_argument("--cache", type=Path, help="an .npz keeping the paintings' statistics between runs")
    ap.add_argument("--no-losses", action="store_true", help="stop after the embeddings' errors")
    ap.add_argument("--save", type=Path, help="an .npz of the names, learnt and out-of-fold predicted embeddings")
    ap.add_argument("--content-dir", type=Path, default=ROOT.parent / "shared" / "data" / "train" / "content")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(args.model)
    recipe = model.recipe
    items = paintings(model)
    weights = load_weights(None)
    vgg = VGGFeatures(weights, STYLE_LAYERS).eval()
    g = torch.Generator().manual_seed(0)
    pictures = [painting_tensor(str(path), recipe["style_size"]) for _, path in items]
    names = [n for n, _ in items]
    if args.cache and args.cache.is_file() and list(np.load(args.cache)["names"]) == names:
        cached = np.load(args.cache)
        whole, augmented = list(cached["whole"]), list(cached["augmented"])
    else:
        whole, augmented = [], []
        with torch.no_grad():
            for p in pictures:
                whole.append(statistics(vgg, p).numpy())
                augmented.append(np.stack([statistics(vgg, c).numpy() for c in crops(p, args.crops, g)]))
        if args.cache:
            np.savez(args.cache, names=names, whole=np.stack(whole), augmented=np.stack(augmented))
    emb = model.net.embedding.detach().numpy()
    groups = [artwork(n) for n, _ in items]
    keys = sorted(set(groups))
    fold_of = {k: i % args.folds for i, k in enumerate(np.random.default_rng(0).permutation(keys))}
    folds = np.array([fold_of[k] for k in groups])
    n = len(items)
    x_all = np.stack(whole)
    predicted = {lam: np.zeros_like(emb) for lam in args.lambdas}
    nearest = np.zeros_like(emb)
    for f in range(args.folds):
        train, test = np.flatnonzero(folds != f), np.flatnonzero(folds == f)
        x = np.concatenate([x_all[train], *[augmented[i] for i in train]])
        y = np.concatenate([emb[train], *[np.repeat(emb[i : i + 1], args.crops, 0) for i in train]])
        for lam in args.lambdas:
            predicted[lam][test] = ridge(x, y, x_all[test], lam)
        sd = x_all[train].std(0) + 1e-6
        d = (((x_all[test, None] - x_all[None, train]) / sd) ** 2).sum(-1)
        nearest[test] = emb[train[d.argmin(1)]]
    mean = np.repeat(emb.mean(0, keepdims=True), n, 0)
    spread = ((emb - mean) ** 2).sum(1).mean()
    print(f"{n} paintings in {len(keys)} artworks, {args.folds} folds; embedding spread {spread:.3f}")
    for lam in args.lambdas:
        err = ((predicted[lam] - emb) ** 2).sum(1).mean()
        print(f"  ridge lambda {lam:g}: squared error {err:.3f} ({err / spread:.2f} of the spread)")
    err = ((nearest - emb) ** 2).sum(1).mean()
    print(f"  nearest painting: squared error {err:.3f} ({err / spread:.2f} of the spread)")
    best = min(args.lambdas, key=lambda lam: ((predicted[lam] - emb) ** 2).sum())
    if args.save:
        np.savez(args.save, names=names, learnt=emb, predicted=predicted[best], nearest=nearest, lam=best)
    if args.no_losses:
        return

    # Losses of the frozen network with each embedding, on fixed photo crops.
    net = model.net.float()
    trainer = FastTrainer(net, weights, pictures).eval()
    contents = ImageFolder(args.content_dir, model.image_size)
    batch = sample_batch(contents, 1, args.eval_size, args.eval_crops, 999, 0.0, model.image_size, 0)[0]
    layer_w = [0.25] * 4
    variants = {"learnt": emb, f"ridge {best:g}": predicted[best], "nearest": nearest, "mean": mean}
    table = {k: [] for k in variants}
    with torch.no_grad():
        for i in range(n):
            styles = torch.full((len(batch),), i)
            for name, e in variants.items():
                net.embedding.data[i] = torch.from_numpy(e[i])
                c, s, _ = trainer(batch, styles, torch.ones(len(batch), 4), layer_w)
                table[name].append((float(c.mean()), float(s.mean())))
            net.embedding.data[i] = torch.from_numpy(emb[i])
    print("mean over the paintings (recipe weights: content 1, style per layer 1/4):")
    for name, rows in table.items():
        c, s = np.mean(rows, 0)
        print(f"  {name:12s} content {c:.3f} style {s:.4f}")
    added = slice(len(recipe["style"]), n)
    print("added paintings only:")
    for name, rows in table.items():
        c, s = np.mean(rows[added], 0)
        print(f"  {name:12s} content {c:.3f} style {s:.4f}")


if __name__ == "__main__":
    main()
