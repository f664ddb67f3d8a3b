"""Elman (1990), Finding Structure in Time: the simple recurrent network on temporal XOR and letter sequences.

    python RNN/elman/train.py                   # both experiments; writes RNN/elman/results/{xor,letters}
    python RNN/elman/train.py --task xor        # temporal XOR (Sec. 2): 1-2-1 network, 3,000 bits, 600 passes
    python RNN/elman/train.py --task letters    # letter sequences (Sec. 3): 6-20-6 network, 200 passes
    python RNN/elman/train.py --quick           # seconds; writes runs/elman-quick

The network reads a stream one element at a time and predicts the next one, with one weight update per time
step (plain online backpropagation; the context units are inputs). After training it is run on a fresh test
stream and the root-mean-squared error is measured at every step, as in Fig. 3 (XOR) and Figs. 4-6 (letters).

Checks. XOR (Fig. 3): the error on the predictable bit (every third, the XOR of the two before) is below the
error on the two random bits, by more than the test stream's sampling noise (the 95% confidence interval of
the difference of mean squared errors lies above 0); the errors themselves are reported beside the ideal
observer that remembers one bit. Letters: the error is low on the predictable vowels and high at each
consonant (a word's onset), which is unpredictable.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from scipy import stats
from tqdm.auto import tqdm

from common.cli import Run, base_parser, positive_int, run
from common.results import metric, print_metrics
from common.summary import count_parameters
from common.training import (NonFiniteLossError, atomic_save, load_checkpoint, restore_checkpoint, resume_checkpoint,
                             save_checkpoint, seed_everything, write_json)
from RNN.elman.model import PAPER_SIZES, SRN
from RNN.elman.tasks import LETTER_FEATURE_NAMES, ideal_observer_rms, letter_sequence, temporal_xor

PAPER_DIR = Path(__file__).resolve().parent
PAPER = "Elman 1990, Finding Structure in Time"
# The paper's stream lengths and passes; the test stream of Fig. 3 is 1,200 cycles of 12 inputs.
PAPER_SETUP = {"xor": {"units": 1000, "passes": 600}, "letters": {"units": 1000, "passes": 200}}
TEST_UNITS = {"xor": 4800, "letters": 1000}
REPORT_EVERY = 20   # passes between checkpoints and log lines


def parse_args(argv=None):
    p = base_parser(__doc__.split("\n")[0], epochs=None, batch_size=1, lr=0.3, paper_dir=PAPER_DIR,
                    lr_help="learning rate of the online updates (the paper states none; 0.3 was chosen on "
                            "validation streams, results/lr_selection.json)",
                    amp=False)                  # fp32: online updates of a tiny network
    p.set_defaults(epochs=None)
    p.add_argument("--task", choices=("xor", "letters", "all"), default="all",
                   help="Sec. 2 (temporal XOR), Sec. 3 (letter sequences), or both")
    p.add_argument("--hidden", type=positive_int, default=None, help="hidden (= context) units; default the paper's")
    p.add_argument("--length", type=positive_int, default=None,
                   help="training stream: XOR triples / consonants (default 1,000 as in the paper)")
    args = p.parse_args(argv)
    if args.out is None and not args.quick and args.task != "all":
        args.out = PAPER_DIR.parents[1] / "runs" / f"elman-{args.task}"     # results/ is the default run's
    return args


def make_stream(task: str, units: int, generator: torch.Generator) -> tuple[torch.Tensor, str | None]:
    """The stream as (T x n_in) floats, and the letters for the letter task."""
    if task == "xor":
        return temporal_xor(units, generator).unsqueeze(-1), None
    letters, features = letter_sequence(units, generator)
    return features, letters


@torch.no_grad()
def run_pass(model: SRN, stream: torch.Tensor, lr: float) -> float:
    """One pass over the stream with one weight update per time step (the paper's online backpropagation);
    returns the mean squared error per output unit.

    The context is an input, so each step's gradient is that of a two-layer net, written out with the
    classic deltas of E = 1/2 sum (y - target)^2:
        delta_y = (y - target) y (1 - y),    delta_h = (W_hy^T delta_y) h (1 - h)
    A test checks them against autograd. The loop runs in NumPy on views of the model's own CPU
    parameters: a 1-2-1 net is far too small for PyTorch's per-operation overhead (0.5 ms a step).
    """
    W_xh = model.input_to_hidden.weight.numpy()       # views: the updates below change the model in place
    b_h = model.input_to_hidden.bias.numpy()
    W_ch = model.context_to_hidden.weight.numpy()
    W_hy = model.hidden_to_output.weight.numpy()
    b_y = model.hidden_to_output.bias.numpy()
    xs = stream.cpu().numpy()
    c = model.initial_context().cpu().numpy()
    total = 0.0
    for t in range(len(xs) - 1):
        x, target = xs[t], xs[t + 1]
        h = 1.0 / (1.0 + np.exp(-(W_xh @ x + W_ch @ c + b_h)))
        y = 1.0 / (1.0 + np.exp(-(W_hy @ h + b_y)))
        err = y - target
        d_y = err * y * (1.0 - y)
        d_h = (W_hy.T @ d_y) * h * (1.0 - h)
        W_hy -= lr * np.outer(d_y, h)
        b_y -= lr * d_y
        W_xh -= lr * np.outer(d_h, x)
        W_ch -= lr * np.outer(d_h, c)
        b_h -= lr * d_h
        total += float(err @ err)
        c = h
    if not np.isfinite(total):
        raise NonFiniteLossError("the squared error became non-finite; try a lower --lr")
    return total / ((len(xs) - 1) * xs.shape[1])


# --------------------------------------------------------------------------- reading Figs. 3-6 as numbers


@torch.no_grad()
def step_errors(model, stream: torch.Tensor) -> torch.Tensor:
    """Squared error of each prediction (T-1 x n_out): prediction of element t + 1 from element t."""
    out, _ = model(stream[:-1])
    return (out - stream[1:]) ** 2


def xor_phase_rms(errors: torch.Tensor) -> torch.Tensor:
    """RMS error by the position (0, 1, 2) within its triple of the bit being predicted; 2 = the XOR bit."""
    e = errors[:, 0]
    phase = (torch.arange(len(e)) + 1) % 3
    return torch.stack([e[phase == k].mean().sqrt() for k in range(3)])


def xor_contrast(errors: torch.Tensor, blocks: int = 48) -> dict[str, float]:
    """How far the XOR bit's error lies below the random bits' (Fig. 3), with a 95% confidence interval.

    For every whole triple j >= 1 of the test stream, d_j = (mean squared error on its two random bits) -
    (squared error on its XOR bit); the mean of d is the difference of the mean squared errors, > 0 when the
    predictable bit is predicted better. The network's context carries from one triple into the next, so
    single triples are not independent: the interval comes from batch means over ``blocks`` runs of
    consecutive triples (about 100 each on the 4,800-triple test stream), with Student's t."""
    e = errors[:, 0]                        # e[t] is the error on bit t + 1; bit 0 is never predicted
    triples = (len(e) + 1) // 3
    per_bit = torch.cat([e.new_full((1,), math.nan), e])[3: 3 * triples].reshape(-1, 3).double()
    d = (per_bit[:, 0] + per_bit[:, 1]) / 2 - per_bit[:, 2]
    means = torch.stack([chunk.mean() for chunk in torch.tensor_split(d, blocks)])
    half = float(stats.t.ppf(0.975, blocks - 1)) * float(means.std()) / math.sqrt(blocks)
    diff = float(d.mean())
    return {"mse_difference": diff, "ci95": [diff - half, diff + half], "triples": len(d), "blocks": blocks}


def plot_xor(errors: torch.Tensor, path: Path) -> None:
    """Fig. 3: RMS error over 12 consecutive predictions, averaged over the cycles of the test stream."""
    n = (len(errors) - 2) // 12 * 12
    rms = errors[2: 2 + n, 0].reshape(-1, 12).mean(0).sqrt()     # start at a triple's first bit as target
    fig, ax = plt.subplots(figsize=(6, 3.4))
    ax.plot(range(1, 13), rms, marker="o")
    for k in range(3, 13, 3):
        ax.axvline(k, color="grey", alpha=0.2)
    ax.set(xlabel="predicted bit (every third bit is the XOR of the two before)", ylabel="RMS error",
           ylim=(0, 0.6), title=f"temporal XOR, mean over {n // 12} cycles of 12 (cf. Fig. 3)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_letters(errors: torch.Tensor, letters: str, path: Path, start: int = 0, n: int = 20) -> None:
    """Figs. 4-6: RMS error over the whole output vector, on bit 1 (Consonant) and on bit 4 (High), along the
    test stream, each point labelled with the letter to be predicted."""
    fig, axes = plt.subplots(3, 1, figsize=(8, 7), sharex=True)
    span = range(start, start + n)
    panels = [("all six bits", errors.mean(1)), (f"bit 1 ({LETTER_FEATURE_NAMES[0]})", errors[:, 0]),
              (f"bit 4 ({LETTER_FEATURE_NAMES[3]})", errors[:, 3])]
    for ax, (name, e) in zip(axes, panels):
        ax.plot(list(span), e[start: start + n].sqrt(), marker="o")
        for t in span:
            ax.annotate(letters[t + 1], (t, float(e[t].sqrt())), textcoords="offset points", xytext=(0, 5),
                        ha="center", fontsize=8)
        ax.set(ylabel="RMS error", title=f"letter prediction, error on {name}", ylim=(0, 1.05))
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("position in the test stream (label: the letter to be predicted)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def letter_rms(errors: torch.Tensor, letters: str) -> dict[str, float]:
    """RMS error (whole vector) when the letter to predict is a consonant (a word's onset) or a vowel."""
    targets = letters[1:]
    onset = torch.tensor([c in "bdg" for c in targets])
    return {"consonant_rms": float(errors[onset].mean().sqrt()), "vowel_rms": float(errors[~onset].mean().sqrt())}


def plot_curve(history: list[dict], task: str, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(5, 3.4))
    ax.plot([h["epoch"] for h in history], [h["train_mse"] for h in history])
    ax.set(xlabel="pass over the training stream", ylabel="mean squared error", yscale="log", title=task)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------- training


def train_task(task: str, r: Run, out: Path) -> tuple[SRN, list[dict], dict]:
    """Train on one task (online, its own loop), write its model, history and plots into ``out``;
    return (model, metrics, summary)."""
    args = r.args
    n_in, n_hidden, n_out = PAPER_SIZES[task]
    n_hidden = args.hidden or n_hidden
    units = args.length or PAPER_SETUP[task]["units"]
    passes = args.epochs or PAPER_SETUP[task]["passes"]
    test_units = TEST_UNITS[task]
    if args.quick:
        units, passes, test_units = min(units, 100), min(passes, 3), 200
    out.mkdir(parents=True, exist_ok=True)
    seed_everything(args.seed)
    stream, _ = make_stream(task, units, torch.Generator().manual_seed(args.seed))
    test_stream, test_letters = make_stream(task, test_units, torch.Generator().manual_seed(10_000 + args.seed))
    model = SRN(n_in, n_hidden, n_out)  # trained on the CPU: see run_pass
    history: list[dict] = []
    ckpt_path = out / "checkpoint.pt"
    if r.resumes(out):   # the same checkpoint format as fit's (common.training.save_checkpoint)
        history = restore_checkpoint(resume_checkpoint(ckpt_path), model)
        print(f"{task}: resumed from {ckpt_path} after pass {len(history)}")
    print(f"{task}: {n_in}-{n_hidden}-{n_out} SRN, {count_parameters(model)} weights, stream of "
          f"{len(stream)}, {passes} passes, lr {args.lr}")
    for epoch in tqdm(range(len(history), passes), desc=task, disable=args.no_progress):
        t0 = time.perf_counter()
        mse = run_pass(model, stream, args.lr)
        history.append({"epoch": epoch + 1, "train_mse": mse, "time_s": round(time.perf_counter() - t0, 4)})
        if (epoch + 1) % REPORT_EVERY == 0 or epoch + 1 == passes:
            save_checkpoint(ckpt_path, model, epoch=epoch + 1, history=history)
            recent = history[-REPORT_EVERY:]
            tqdm.write(f"{task} pass {epoch + 1}/{passes}  train_mse {mse:.4g}  "
                       f"({sum(h['time_s'] for h in recent):.1f} s for {len(recent)} passes)")
    atomic_save(model.state_dict(), out / "model.pt")
    write_json(history, out / "history.json")
    plot_curve(history, task, out / "curves.png")
    errors = step_errors(model, test_stream)
    summary = {"weights": count_parameters(model), "sizes": [n_in, n_hidden, n_out], "stream_length": len(stream),
               "passes": passes, "test_length": len(test_stream), "final_train_mse": history[-1]["train_mse"],
               "train_time_s": sum(h.get("time_s", 0.0) for h in history)}
    if task == "xor":
        rms = xor_phase_rms(errors)
        random_rms = float((rms[0] ** 2 + rms[1] ** 2).div(2).sqrt())
        contrast = xor_contrast(errors)
        ideal = ideal_observer_rms(2)
        plot_xor(errors, out / "fig3_xor_error.png")
        summary.update(rms_by_phase=rms.tolist(), predictable_bit_rms=float(rms[2]), random_bits_rms=random_rms,
                       ideal_observer_2_bits=ideal, **contrast)
        metrics = [metric("xor_predictable_below_random", contrast["ci95"][0],
                          paper="below the random bits' (Fig. 3)", band=(0.0, None),
                          claim="temporal XOR: the predictable bit's error below the random bits' "
                                "(MSE difference, lower end of its 95% CI)",
                          mse_difference=round(contrast["mse_difference"], 4),
                          ci95=[round(v, 4) for v in contrast["ci95"]],
                          predictable_bit_rms=round(float(rms[2]), 4), random_bits_rms=round(random_rms, 4))]
    else:
        summary.update(letter_rms(errors, test_letters))
        plot_letters(errors, test_letters, out / "fig4-6_letter_error.png")
        metrics = [metric("letters_vowel_rms", summary["vowel_rms"], paper="low (Fig. 4)", band=(0.0, 0.2),
                          claim="letters: RMS error over the 6 feature bits when the next letter is a vowel"),
                   metric("letters_onset_above_vowel", float(summary["consonant_rms"] > 2 * summary["vowel_rms"]),
                          paper="error rises at each consonant (Figs. 4-6)", band=(1.0, 1.0),
                          claim="letters: error at a word onset above twice the vowels' (1 = yes)")]
    return model, metrics, summary


def details(summaries: dict[str, dict]) -> dict:
    """The errors behind the checks (the results table under the metrics), with the XOR task's references."""
    rows = []
    if "xor" in summaries:
        s = summaries["xor"]
        rows += [["XOR: the predictable bit", round(s["predictable_bit_rms"], 4),
                  round(s["ideal_observer_2_bits"]["predictable"], 4), 0.5],
                 ["XOR: the two random bits", round(s["random_bits_rms"], 4),
                  round(s["ideal_observer_2_bits"]["random"], 4), 0.5]]
    if "letters" in summaries:
        s = summaries["letters"]
        rows += [["letters: next is a vowel", round(s["vowel_rms"], 4), "-", "-"],
                 ["letters: next is a consonant (onset)", round(s["consonant_rms"], 4), "-", "-"]]
    return {"columns": ["prediction", "RMS error, ours", "ideal observer of the last 2 bits", "always 0.5"],
            "rows": rows}


def train(r: Run) -> int:
    if r.device.type != "cpu":
        print("note: the SRN trains on the CPU (one tiny update per time step); --device is ignored")
    tasks = ("xor", "letters") if r.args.task == "all" else (r.args.task,)
    models, metrics, summaries = {}, [], {}
    for task in tasks:
        models[task], m, summaries[task] = train_task(task, r, r.out / task)
        metrics += m
    last = tasks[-1]
    n_in, n_hidden, n_out = summaries[last]["sizes"]
    r.write_metrics(paper=PAPER, metrics=metrics, model=models[last],
                    model_kwargs={"n_in": n_in, "n_hidden": n_hidden, "n_out": n_out}, weights=f"{last}/model.pt",
                    epochs=max(s["passes"] for s in summaries.values()),
                    training_time_s=sum(s["train_time_s"] for s in summaries.values()) if r.args.resume else None,
                    tasks=summaries, details=details(summaries),
                    hyperparameters={"optimizer": f"online gradient descent, lr {r.args.lr}, one update per step",
                                     "loss": "1/2 squared error"})
    print_metrics(metrics, r.out)
    return 0


def verify(results: Path, record: dict, *, fast: bool) -> list:
    """``python -m common.verify``: both shipped networks run afresh over the test streams train.py made (the same
    seeds), and the three claims computed from their errors as train.py does (deterministic: exact)."""
    from common.verify import Check, claimed

    errors, letters = {}, None
    for task, sizes in PAPER_SIZES.items():
        model = SRN(*sizes)
        model.load_state_dict(load_checkpoint(results / task / "model.pt"))
        stream, task_letters = make_stream(task, TEST_UNITS[task],
                                           torch.Generator().manual_seed(10_000 + record["seed"]))
        errors[task], letters = step_errors(model, stream), task_letters or letters
    rms = letter_rms(errors["letters"], letters)
    how = "the test streams of train.py (same seeds), the shipped networks"
    return [Check("xor_predictable_below_random", claimed(record, "xor_predictable_below_random"),
                  xor_contrast(errors["xor"])["ci95"][0], 1e-4, how),
            Check("letters_vowel_rms", claimed(record, "letters_vowel_rms"), rms["vowel_rms"], 1e-4, how),
            Check("letters_onset_above_vowel", claimed(record, "letters_onset_above_vowel"),
                  float(rms["consonant_rms"] > 2 * rms["vowel_rms"]), 0.0, how)]


def main(argv=None) -> int:
    args = parse_args(argv)
    return run(train, args, PAPER_DIR)


if __name__ == "__main__":
    sys.exit(main())
