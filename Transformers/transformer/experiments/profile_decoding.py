"""Where beam search's time goes: torch.profiler over the shipped model's beam search (beam 5, incremental decoder
state) on the first --sentences Test2016 sentences, the top operations by self CPU time. It explains the decoding
race of benchmark.py: the pre-softmax projection (``aten::mm``), its log-softmax and the top-k over the candidates
are work that recomputing the prefix does just the same, so they bound the incremental state's gain.

    python Transformers/transformer/experiments/profile_decoding.py     # a minute; run it on a quiet machine
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from common.cli import positive_int
from common.training import describe_device
from Transformers.transformer.data import load_multi30k
from Transformers.transformer.translate import load_model, translate

PAPER_DIR = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--weights", type=Path, default=PAPER_DIR / "results" / "model.pt", help="the trained model")
    p.add_argument("--sentences", type=positive_int, default=200, help="Test2016 sentences decoded")
    p.add_argument("--beam", type=positive_int, default=5)
    p.add_argument("--top", type=positive_int, default=12, help="operations shown")
    p.add_argument("--data-dir", default=None)
    args = p.parse_args(argv)
    device = torch.device("cpu")
    _, splits = load_multi30k(args.data_dir)
    model, _ = load_model(args.weights, device)
    sources = splits["test2016"].src[: args.sentences]
    print(f"beam {args.beam} over {len(sources)} Test2016 sentences, {describe_device(device)}, fp32")
    translate(model, sources[:20], beam=args.beam)                  # warm-up
    for incremental in (True, False):
        t0 = time.perf_counter()
        translate(model, sources, beam=args.beam, incremental=incremental)
        print(f"{'incremental state' if incremental else 'prefix recomputed'}: {time.perf_counter() - t0:.2f} s")
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        translate(model, sources, beam=args.beam)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.top))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
