"""Speed of the Transformer, two races side by side in one run:

1. Decoding: beam search (beam 5, fairseq's search) with the incremental decoder state (the keys and values of
   earlier target positions cached) against the same search recomputing the decoder over the whole prefix at every
   step. Both must give the same translations (checked here, and by tests/test_transformer.py); we report
   sentences per second and the ratio (the issue asks for >= 3x); then the same race on the shortest, the middle
   and the longest --sentences of Test2016 (the saving grows with the length of the prefix).
2. Training: tokens per second of train.py's step (our Transformer, transformer_tiny) against torch.nn.Transformer
   of the same size (4 + 4 post-norm layers, d_model 128, d_ff 256, 4 heads, dropout 0.3, the same shared
   embedding, positions and output projection around it) in the same loop: the same batches of ~8,192 tokens,
   Adam, the label-smoothed loss, bf16 autocast where the device computes bf16 natively. (nn.Transformer adds a
   LayerNorm after each stack, 512 parameters more.) A third contender is our model with the label-smoothed loss
   left to autograd (log_softmax, gather, sum and their backward passes) instead of train.py's loss with its
   gradient written out (softmax - q): what that one function buys.

The decoding race uses the trained model (results/model.pt) when there is one: a random one says little (it
translates every sentence into max_len tokens). Each pipeline runs a warm-up slice, then --repeats slices, the
pipelines taking turns (common.benchmark); read medians and ratios. Not a test. What it prints also goes to
Transformers/transformer/results/experiments/benchmark/<device>.txt.

    python Transformers/transformer/experiments/benchmark.py
    python Transformers/transformer/experiments/benchmark.py --sentences 8 --updates 1 --repeats 1 --max-len 8 \
        --max-tokens 512 --out /tmp/b                     # a smoke test: seconds, numbers meaningless
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from common.benchmark import Report, TrainingPipeline, rates, time_interleaved
from common.cli import positive_int
from common.training import choose_amp, describe_device, describe_precision, resolve_device, seed_everything
from Transformers.transformer.data import TokenBatches, load_multi30k
from Transformers.transformer.model import PAD, Transformer, sinusoidal_positions
from Transformers.transformer.train import ADAM_BETAS, ADAM_EPS, translation_step
from Transformers.transformer.translate import MAX_LEN, translate

PAPER_DIR = Path(__file__).resolve().parents[1]
OUT = PAPER_DIR / "results" / "experiments" / "benchmark"


class TorchTransformer(nn.Module):
    """torch.nn.Transformer (batch_first, post-norm, ReLU) of transformer_tiny's size inside our embedding (shared,
    scaled by sqrt(d_model), sinusoidal positions, dropout) and output projection, with our model's
    encode / decode / output interface, so that train.py's step trains it unchanged."""

    def __init__(self, vocab_size: int, N: int = 4, d_model: int = 128, d_ff: int = 256, h: int = 4,
                 P_drop: float = 0.3, max_positions: int = 1024):
        super().__init__()
        self.d_model = d_model
        self.embedding = nn.Embedding(vocab_size, d_model, padding_idx=PAD)
        nn.init.normal_(self.embedding.weight, std=d_model ** -0.5)
        self.register_buffer("PE", sinusoidal_positions(max_positions, d_model), persistent=False)
        self.dropout = nn.Dropout(P_drop)
        self.core = nn.Transformer(d_model, h, N, N, d_ff, P_drop, batch_first=True)

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.embedding(tokens) * math.sqrt(self.d_model) + self.PE[: tokens.size(1)])

    def encode(self, src: torch.Tensor):
        pad = src == PAD
        return self.core.encoder(self.embed(src), src_key_padding_mask=pad), pad

    def decode(self, prev: torch.Tensor, memory: torch.Tensor, pad: torch.Tensor, state=None) -> torch.Tensor:
        mask = nn.Transformer.generate_square_subsequent_mask(prev.size(1), device=prev.device)
        return self.core.decoder(self.embed(prev), memory, tgt_mask=mask, tgt_is_causal=True,
                                 memory_key_padding_mask=pad)

    def output(self, y: torch.Tensor) -> torch.Tensor:
        return F.linear(y, self.embedding.weight)


def autograd_label_smoothed_nll(logits: torch.Tensor, target: torch.Tensor, epsilon_ls: float):
    """train.py's ``label_smoothed_nll`` on real (non-padding) targets computed directly, (1 - eps) NLL
    + eps / V sum_v (-log p_v) per token, and differentiated by autograd (train.py's loss_fn interface)."""
    lprobs = logits.float().log_softmax(-1)
    nll = -lprobs.gather(-1, target.unsqueeze(-1)).squeeze(-1)
    loss = ((1 - epsilon_ls) * nll - epsilon_ls / lprobs.size(-1) * lprobs.sum(-1)).sum()
    return loss, nll.sum(), target.numel()


def step_pipeline(model: nn.Module, batches, device: torch.device, amp: bool, step=None) -> TrainingPipeline:
    """train.py's update (forward, backward, Adam) on a stream of batches, for common.benchmark."""
    model = model.to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, betas=ADAM_BETAS, eps=ADAM_EPS)
    return TrainingPipeline(batches, model, optimizer, device, amp=amp, step=step or translation_step(0.1))


class DecodePipeline:
    """Beam search over a fixed list of sentences, incremental or recomputing; keeps its last translations."""

    def __init__(self, model: Transformer, sources, *, incremental: bool, beam: int, max_len: int, device):
        self.model, self.sources, self.incremental, self.beam, self.max_len, self.device = (model, sources, incremental,
                                                                                           beam, max_len, device)
        self.times, self.outputs = [], None

    def train(self, n: int) -> float:      # common.benchmark's name for "run n slices"
        t0 = time.perf_counter()
        for _ in range(n):
            self.outputs = translate(self.model, self.sources, beam=self.beam, max_len=self.max_len,
                                     incremental=self.incremental, device=self.device)
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0


def decode_by_length(model: Transformer, sources, args, device, report: Report) -> bool:
    """The decoding race again on the shortest, the middle and the longest --sentences Test2016 sources: recomputing
    the prefix costs more the longer the sentence, the incremental state's saving with it. True when both ways
    translate alike."""
    by_length = sorted(sources, key=len)
    n = min(args.sentences, len(by_length) // 3)
    middle = (len(by_length) - n) // 2
    report.say(f"\nthe same race by source length ({n} sentences each, Test2016 sorted by source length)")
    same = True
    for label, group in (("shortest", by_length[:n]), ("middle", by_length[middle : middle + n]),
                         ("longest", by_length[-n:])):
        pipes = [DecodePipeline(model, group, incremental=incremental, beam=args.beam, max_len=args.max_len,
                                device=device) for incremental in (True, False)]
        time_interleaved(dict(enumerate(pipes)), 1, args.repeats)
        inc, rec = (n / statistics.median(p.times) for p in pipes)
        same &= pipes[0].outputs == pipes[1].outputs
        report.say(f"{label:<9} mean source length {sum(map(len, group)) / n:5.1f} BPE tokens: incremental "
                   f"{inc:6,.0f} sentences/s, recomputed {rec:6,.0f}: {inc / rec:.2f}x")
    return same


def cycle(batches):
    while True:
        yield from batches


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--weights", type=Path, default=PAPER_DIR / "results" / "model.pt",
                   help="the trained model for the decoding race (random weights if missing)")
    p.add_argument("--sentences", type=positive_int, default=200, help="Test2016 sentences decoded per slice")
    p.add_argument("--beam", type=positive_int, default=5)
    p.add_argument("--max-len", type=positive_int, default=MAX_LEN, help="longest translation")
    p.add_argument("--max-tokens", type=positive_int, default=8192, help="tokens per training batch")
    p.add_argument("--updates", type=positive_int, default=10, help="training updates per slice")
    p.add_argument("--repeats", type=positive_int, default=3, help="timed slices per pipeline")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--amp", default="auto", choices=["auto", "on", "off"], help="bf16 autocast for training")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", type=Path, default=OUT, help="folder for <device>.txt (what is printed)")
    args = p.parse_args(argv)
    device = resolve_device(args.device)
    amp = choose_amp(args.amp, device)
    seed_everything(0)
    report = Report()
    vocab, splits = load_multi30k(args.data_dir)
    report.say(f"Transformer (transformer_tiny) on Multi30k, {describe_device(device)}, torch {torch.__version__}")

    # 1. decoding
    model = Transformer.tiny(len(vocab)).to(device).eval()
    if args.weights.exists():
        from Transformers.transformer.translate import load_model

        model, _ = load_model(args.weights, device)
        what = str(args.weights)
    else:
        what = "random weights (no trained model found)"
    sources = splits["test2016"].src[: args.sentences]
    pipes = {f"beam {args.beam}, incremental state": DecodePipeline(model, sources, incremental=True, beam=args.beam,
                                                                     max_len=args.max_len, device=device),
             f"beam {args.beam}, prefix recomputed": DecodePipeline(model, sources, incremental=False, beam=args.beam,
                                                                    max_len=args.max_len, device=device)}
    report.say(f"\ndecoding {len(sources)} Test2016 sentences, beam {args.beam}, fp32, model: {what}")
    time_interleaved(pipes, 1, args.repeats)
    rate = rates(pipes, len(sources), "sentences", report)
    inc, rec = pipes.values()
    same = inc.outputs == rec.outputs
    names = list(rate)
    report.say(f"same translations: {'yes' if same else 'NO'}; ratio incremental / recomputed: "
               f"{rate[names[0]] / rate[names[1]]:.2f}x")
    same &= decode_by_length(model, splits["test2016"].src, args, device, report)

    # 2. training
    batches = TokenBatches(splits["train"], max_tokens=args.max_tokens, seed=0, shuffle=True, device=device)
    torch.manual_seed(0)
    train_pipes = {"ours (train.py's Transformer)": step_pipeline(Transformer.tiny(len(vocab)), cycle(batches),
                                                                  device, amp),
                   "torch.nn.Transformer, same size": step_pipeline(TorchTransformer(len(vocab)), cycle(batches),
                                                                    device, amp),
                   "ours, the loss through autograd": step_pipeline(Transformer.tiny(len(vocab)), cycle(batches),
                                                                    device, amp,
                                                                    translation_step(0.1, autograd_label_smoothed_nll))}
    tokens = sum(int((b[0] != PAD).sum() + (b[2] != PAD).sum()) for b in batches.batches) / len(batches.batches)
    report.say(f"\ntraining, batches of <= {args.max_tokens:,} tokens (mean {tokens:,.0f} source + target tokens), "
               f"{describe_precision(amp, args.amp, device)}")
    time_interleaved(train_pipes, args.updates, args.repeats, warmup=max(1, args.updates // 2))
    train_rate = rates(train_pipes, args.updates * tokens, "tokens", report)
    a, b, c = train_rate.values()
    report.say(f"ratio ours / torch.nn.Transformer: {a / b:.2f}x; ours / the loss through autograd: {a / c:.2f}x; "
               f"{a / tokens:.2f} updates/s "
               f"(8,000 updates: {8000 * tokens / a / 3600:.1f} h of training steps)")
    report.write(args.out / f"{device.type}.txt")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
