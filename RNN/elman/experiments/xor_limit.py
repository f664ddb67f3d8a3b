"""How low can the error on the predictable XOR bit go? A bound for the temporal XOR task of Elman (1990), Sec. 2.

    python RNN/elman/experiments/xor_limit.py          # -> RNN/elman/results/experiments/xor_limit/xor_limit.json
    python RNN/elman/experiments/xor_limit.py --quick  # seconds; writes runs/elman-quick/xor_limit/

The stream carries no marker of where a triple starts. A predictor must find the phase (which bit is the XOR
bit) from the bits themselves: the XOR constraint holds at every third position, and only by chance (1 in 2)
elsewhere. Three measurements:

1. **Ideal observer with a window of k bits** (``tasks.ideal_observer_rms``): the Bayes-optimal prediction of
   the next bit from the last k bits, phase unknown, computed exactly. Its RMS error on the predictable bits is
   the lowest any predictor that sees only those k bits can reach; with k = 2 it is exactly 1/3.
2. **The paper's network, trained as well as we can.** The 1-2-1 SRN (model.py) trained by Adam on many short
   windows of the stream, once with Elman's one-step gradient (the context is an input) and once with full
   backpropagation through time; several seeds each. RMS on the XOR bit of a fresh test stream.
3. **The same with the phase given away.** A network run from the start of a stream could know the phase: the
   stream starts with a triple, so a net that counts mod 3 from its initial context knows which bit is the XOR
   bit. Here the training windows start at a triple's first bit, so counting pays, and the gradient is full
   backpropagation through time. With 2 hidden units (the paper's), and with 3 and 4 for contrast.

RNN/elman/EXPERIMENTS.md reads these numbers.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from common.cli import positive_int
from common.results import command_line, git_commit
from common.training import describe_device, seed_everything, write_json
from RNN.elman.model import SRN
from RNN.elman.tasks import ideal_observer_rms, temporal_xor
from RNN.elman.train import step_errors, xor_phase_rms

PAPER_DIR = Path(__file__).resolve().parents[1]
NAME = "xor_limit"
TARGET = 0.15   # the band the XOR row used to have (ours, not the paper's): which window would reach it?


def train_srn(seed: int, hidden: int, full_bptt: bool, steps: int, lr: float = 0.02, windows: int = 64,
              triples: int = 11, test_triples: int = 4000, phase_aligned: bool = False) -> dict:
    """Adam on windows of 3 * ``triples`` bits cut from the stream at a random phase (so that the window's start
    tells nothing about where triples begin; the context starts at 0.5 and the first 6 predictions are not
    scored). With ``phase_aligned`` every window starts at a triple's first bit and every prediction is scored,
    so a net that counts from its initial context knows the phase. Returns the RMS by phase on a fresh,
    continuous stream (which starts at a triple's first bit)."""
    seed_everything(seed)
    model = SRN(1, hidden, 1, truncate=not full_bptt)
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(-1.0, 1.0)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, [2 * steps // 3], gamma=0.25)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        rows = temporal_xor(windows * (triples + 1), gen).reshape(windows, 3 * (triples + 1))
        shift = 0 if phase_aligned else torch.randint(0, 3, (windows, 1), generator=gen)
        s = rows.gather(1, shift + torch.arange(3 * triples).expand(windows, -1)).unsqueeze(-1)
        out, _ = model(s[:, :-1])
        loss = ((out - s[:, 1:]) ** 2)[:, 0 if phase_aligned else 6:].mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    test = temporal_xor(test_triples, torch.Generator().manual_seed(10_000 + seed)).unsqueeze(-1)
    rms = xor_phase_rms(step_errors(model, test))
    return {"seed": seed, "hidden": hidden, "gradient": "full BPTT" if full_bptt else "one step (Elman)",
            "windows": "start of a triple" if phase_aligned else "random phase", "steps": steps,
            "rms_by_phase": [round(float(r), 4) for r in rms], "xor_bit_rms": round(float(rms[2]), 4)}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--max-window", type=positive_int, default=15, help="largest window k of the ideal observer")
    p.add_argument("--seeds", type=positive_int, default=6, help="SRN probes: seeds per gradient kind")
    p.add_argument("--steps", type=positive_int, default=4000, help="SRN probes: Adam steps per run")
    p.add_argument("--hidden", type=positive_int, default=2, help="SRN probes: hidden units (the paper's: 2)")
    p.add_argument("--counting-hidden", type=positive_int, nargs="*", default=[3, 4],
                   help="phase-aligned probes: hidden sizes to try besides --hidden (3 seeds each)")
    p.add_argument("--quick", action="store_true", help="seconds: small table, two short probes")
    p.add_argument("--out", type=Path, default=None,
                   help=f"output folder (default: RNN/elman/results/experiments/{NAME}; "
                        f"runs/elman-quick/{NAME} with --quick)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars: a line per probe (for logs)")
    args = p.parse_args(argv)
    if args.max_window < 2:
        p.error("--max-window must be at least 2")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    commit = git_commit()        # at the start: the code that ran, not what the tree holds when it ends
    torch.set_num_threads(1)     # an 11-weight net: threads only add overhead
    if args.quick:
        args.max_window, args.seeds, args.steps, args.counting_hidden = min(args.max_window, 8), 1, 50, []
    out = args.out or (PAPER_DIR.parents[1] / "runs" / "elman-quick" / NAME if args.quick
                       else PAPER_DIR / "results" / "experiments" / NAME)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    ideal = {k: round(ideal_observer_rms(k)["predictable"], 4) for k in range(2, args.max_window + 1)}
    print("ideal observer, RMS on the XOR bit by window k:", ideal)
    need = next((k for k, v in ideal.items() if v < TARGET), None)
    # 2. Elman's one-step gradient and full BPTT on windows cut at random phases;
    # 3. the phase given away: windows from a triple's start, full BPTT, the paper's size and larger ones
    runs = [(seed, args.hidden, full, False) for full in (False, True) for seed in range(args.seeds)]
    runs += [(seed, hidden, True, True) for hidden in [args.hidden, *args.counting_hidden]
             for seed in range(args.seeds if hidden == args.hidden else min(args.seeds, 3))]
    probes, counting = [], []
    for seed, hidden, full, aligned in tqdm(runs, desc="SRN probes", disable=args.no_progress):
        r = train_srn(seed, hidden, full, args.steps, phase_aligned=aligned)
        (counting if aligned else probes).append(r)
        tqdm.write(f"SRN 1-{r['hidden']}-1, {r['gradient']}, windows from {r['windows']}, seed {r['seed']}: "
                   f"RMS on the XOR bit {r['xor_bit_rms']}  ({time.perf_counter() - t0:.0f} s)")
    best = {g: min(r["xor_bit_rms"] for r in probes if r["gradient"] == g) for g in {r["gradient"] for r in probes}}
    best_counting = {str(h): min(r["xor_bit_rms"] for r in counting if r["hidden"] == h)
                     for h in dict.fromkeys(r["hidden"] for r in counting)}
    write_json({"target": TARGET, "ideal_observer_rms_by_window": ideal, "smallest_window_below_target": need,
                "srn_probes": probes, "srn_best": best, "phase_aligned_probes": counting,
                "phase_aligned_best_by_hidden": best_counting, "quick": args.quick, "commit": commit,
                "device": describe_device(torch.device("cpu")), "wall_time_s": round(time.perf_counter() - t0, 1),
                "command": command_line()}, out / f"{NAME}.json")
    print(f"smallest window with RMS < {TARGET}: {need}; best SRN: {best}; "
          f"phase-aligned, best by hidden size: {best_counting}; wrote {out / f'{NAME}.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
