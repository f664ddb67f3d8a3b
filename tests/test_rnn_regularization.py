import json
import math

import pytest
import torch
import torch.nn.functional as F

from common.data import DataError
from common.text import EOS, Vocabulary, batchify, load_ptb, n_windows, read_words, windows
from common.training import load_checkpoint
from RNN.rnn_regularization import train
from RNN.rnn_regularization.model import SIZES, RegularizedLSTM, detach


def test_batchify_keeps_the_stream_in_columns_and_windows_follow_each_other():
    stream = torch.arange(23)
    cols = batchify(stream, 4)                                  # 23 // 4 = 5 rows; 3 tokens dropped
    assert cols.shape == (5, 4) and torch.equal(cols[:, 1], torch.arange(5, 10))
    assert torch.equal(cols.t().flatten(), torch.arange(20))
    ws = list(windows(cols, 2, drop_last=False))                # 4 targets per column: windows of 2, 2
    assert [len(x) for x, _ in ws] == [2, 2] == [len(y) for _, y in ws] and n_windows(cols, 2, False) == 2
    assert torch.equal(torch.cat([x for x, _ in ws]), cols[:-1])
    assert torch.equal(torch.cat([y for _, y in ws]), cols[1:])
    assert [len(x) for x, _ in windows(cols, 3)] == [3] and n_windows(cols, 3) == 1   # the short last one dropped
    assert [len(x) for x, _ in windows(cols, 3, drop_last=False)] == [3, 1]
    with pytest.raises(ValueError):
        batchify(torch.arange(5), 4)


def test_the_carried_state_equals_one_long_pass():
    torch.manual_seed(0)
    model = RegularizedLSTM(50, hidden=8, layers=2, dropout=0.5).eval()
    x = torch.randint(0, 50, (12, 3))
    whole, _ = model(x)
    state, parts = None, []
    for i in range(0, 12, 5):
        out, state = model(x[i : i + 5], state)
        state = detach(state)
        parts.append(out)
    assert torch.allclose(torch.cat(parts), whole, atol=1e-6)


def test_dropout_only_on_vertical_connections_and_off_in_eval():
    torch.manual_seed(0)
    model = RegularizedLSTM(50, hidden=8, layers=3, dropout=0.5)
    seen = []
    model.drop.register_forward_hook(lambda mod, inp, out: seen.append(inp[0].shape))
    x = torch.randint(0, 50, (7, 2))
    model(x)
    assert seen == [(7, 2, 8)] * 4              # L + 1 = 4 times, each on a whole layer's output sequence
    assert all(lstm.num_layers == 1 and lstm.dropout == 0 for lstm in model.lstm)   # none inside the recurrence
    model.eval()
    a, _ = model(x)
    b, _ = model(x)
    plain = RegularizedLSTM(50, hidden=8, layers=3, dropout=0.0).eval()
    plain.load_state_dict(model.state_dict())
    assert torch.equal(a, b) and torch.allclose(a, plain(x)[0])


def test_initialisation_and_parameter_counts():
    model = RegularizedLSTM.of_size("small")
    assert all(p.abs().max() <= 0.1 for p in model.parameters())
    # embedding 10000x200, 2 LSTM layers of 4x200x(200+200) + 2 biases of 800, softmax 200x10000 + 10000
    assert sum(p.numel() for p in model.parameters()) == 2_000_000 + 2 * (320_000 + 1_600) + 2_010_000
    medium = sum(p.numel() for p in RegularizedLSTM.of_size("medium").parameters())
    assert medium == 6_500_000 + 2 * (4 * 650 * 1300 + 5_200) + 6_510_000
    assert SIZES["large"]["dropout"] == 0.65


def test_a_uniform_model_has_the_vocabulary_size_as_perplexity():
    model = RegularizedLSTM(37, hidden=4)
    torch.nn.init.zeros_(model.decoder.weight)
    torch.nn.init.zeros_(model.decoder.bias)
    ppl = train.stream_perplexity(model, torch.randint(0, 37, (500,)), torch.device("cpu"), window=64)
    assert ppl == pytest.approx(37, rel=1e-5)


def test_the_loss_is_summed_over_steps_and_averaged_over_the_batch():
    torch.manual_seed(0)
    model = RegularizedLSTM(20, hidden=6)
    x, y = torch.randint(0, 20, (5, 3)), torch.randint(0, 20, (5, 3))
    loss, sums = train.CarriedState()(model, (x, y, True))
    logits, _ = model(x)
    per_step = [F.cross_entropy(logits[t], y[t]) for t in range(5)]   # the authors' ClassNLLCriterion per step
    assert loss.item() == pytest.approx(sum(per_step).item(), rel=1e-5)
    assert sums["n"] == 15 and sums["loss"] == pytest.approx(loss.item() * 3, rel=1e-5)


def test_the_learning_rate_schedule_of_the_authors_code():
    f = train.lr_factor(4, 2.0)                 # small: epochs 1-5 at 1, then halved after every epoch
    assert [f(e) for e in range(13)] == [1, 1, 1, 1, 1, 0.5, 0.25, 0.125, 2**-4, 2**-5, 2**-6, 2**-7, 2**-8]
    args = train.parse_args(["--size", "medium"])
    assert (args.epochs, args.steps, args.clip, args.dropout) == (39, 35, 5.0, 0.5)
    assert args.out == train.PAPER_DIR / "results" / "medium"


def test_vocabulary_round_trip(tmp_path):
    v = Vocabulary.from_words("the cat sat on the mat <eos>".split())
    assert v.words == ["the", "cat", "sat", "on", "mat", "<eos>"]
    ids = v.encode(["mat", "the"])
    assert ids.tolist() == [4, 0] and v.decode(ids) == ["mat", "the"]
    v.save(tmp_path / "vocab.json")
    assert Vocabulary.load(tmp_path / "vocab.json") == v
    with pytest.raises(DataError, match="not in the vocabulary"):
        v.encode(["dog"])
    (tmp_path / "t.txt").write_text("a b\nc\n")
    assert read_words(tmp_path / "t.txt") == ["a", "b", EOS, "c", EOS]


def test_penn_treebank_counts(ptb_root):
    vocab, streams = load_ptb(ptb_root)
    assert len(vocab) == 10_000 and {"<unk>", EOS} <= set(vocab.words)
    assert {s: len(t) for s, t in streams.items()} == {"train": 929_589, "valid": 73_760, "test": 82_430}
    assert vocab.decode(streams["train"][:3]) == ["aer", "banknote", "berlitz"]


@pytest.fixture
def tiny(monkeypatch):
    monkeypatch.setattr(train, "QUICK_TOKENS", {"train": 3000, "valid": 800, "test": 500})


def _run(root, out, *extra):
    return train.main(["--quick", "--data-dir", str(root), "--out", str(out), "--no-progress", *extra])


def test_quick_end_to_end_resume_and_evaluate(ptb_root, tmp_path, tiny, capsys):
    assert _run(ptb_root, tmp_path / "once", "--epochs", "2") == 0
    record = json.loads((tmp_path / "once" / "metrics.json").read_text())
    assert record["quick"] and record["metrics"][0]["name"] == "test_ppl" and record["size"] == "small"
    history = json.loads((tmp_path / "once" / "history.json").read_text())
    assert history[1]["train_ppl"] < history[0]["train_ppl"]                      # it learns
    assert history[0]["val_ppl"] == pytest.approx(math.exp(history[0]["val_loss"]))
    assert Vocabulary.load(tmp_path / "once" / "vocab.json").words[:2] == ["aer", "banknote"]
    # interrupted after epoch 1, resumed: the same weights
    assert _run(ptb_root, tmp_path / "twice", "--epochs", "1") == 0
    assert _run(ptb_root, tmp_path / "twice", "--epochs", "2", "--resume") == 0
    a, b = (load_checkpoint(tmp_path / d / "model.pt") for d in ("once", "twice"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    capsys.readouterr()
    assert _run(ptb_root, tmp_path / "e", "--evaluate", str(tmp_path / "once" / "model.pt")) == 0
    assert f"test perplexity {record['test_ppl']:.2f}" in capsys.readouterr().out


def test_amp_on_without_native_bf16_is_one_error_line(ptb_root, tmp_path, tiny, cpu_bf16, capsys):
    """oneDNN has no bf16 LSTM kernel for a CPU without native bf16: --amp on says so instead of crashing."""
    if cpu_bf16:
        pytest.skip("the error is for CPUs without native bf16")
    assert _run(ptb_root, tmp_path, "--amp", "on") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --amp on:") and "--amp off" in err[0]
    assert not (tmp_path / "checkpoint.pt").exists()
