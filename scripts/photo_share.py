"""Set the photo's share in a fast-network model file's output (the network's fixed skip, ``TransformerNet.photo``)
without training: the weights stay as they are, the file records the new share.

The network for any painting paints away structure of the photo that its style loss does not ask it to: mixing a
share of the photo into its output brings content distances down at no cost in style (docs/MODELS.md, "The photo's
share"). ``impasto train fast-arbitrary --photo`` trains with a share; this sets one on a file already trained.

    python scripts/photo_share.py runs/arb5/arb5.safetensors 0.25 -o fast_any.safetensors
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from impasto.core.modelfile import read_tensors, save_tensors
from impasto.errors import ImpastoError
from impasto.methods.fast.model import load_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", type=Path)
    ap.add_argument("share", type=float, help="0 to below 1")
    ap.add_argument("-o", "--output", type=Path, required=True)
    args = ap.parse_args()
    try:
        if not 0 <= args.share < 1:
            raise ImpastoError(f"the share must be from 0 to below 1, got {args.share}")
        load_model(args.model)  # a fast-network file, or a one-line error naming what is wrong
    except ImpastoError as e:
        print(f"photo_share: {e}", file=sys.stderr)
        sys.exit(2)
    state, meta = read_tensors(args.model, f"model {args.model}")
    meta = dict(meta)
    trained = float(meta.get("photo", 0))
    meta["photo"] = repr(args.share)
    recipe = json.loads(meta.get("recipe") or "{}")
    # The recipe keeps the share it trained with; this records the one set afterwards.
    recipe["photo_set"] = {"from": trained, "to": args.share}
    meta["recipe"] = json.dumps(recipe, sort_keys=True)
    save_tensors(state, args.output, meta)
    print(f"{args.output}: photo share {trained} -> {load_model(args.output).net.photo}")


if __name__ == "__main__":
    main()
