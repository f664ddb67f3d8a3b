"""Transformers/transformer: the model of Sec. 3 against its equations, the decoding (greedy, beam, incremental),
BLEU, the loss and schedule of Sec. 5, Table 3's parameter counts, the Multi30k data, and train.py end to end."""

import io
import itertools
import json
import math
from collections import Counter

import pytest
import torch
import torch.nn.functional as F

from common.attention import causal_mask
from common.training import load_checkpoint
from tests.conftest import Payload, one_error_line
from Transformers.transformer import data as mdata
from Transformers.transformer import train, translate
from Transformers.transformer.model import (EOS, PAD, SPECIALS, TABLE3, TABLE3_FITTED_VOCABULARY, Transformer,
                                            count_parameters, sinusoidal_positions, table3_parameters)


@pytest.fixture(scope="session")
def multi30k(multi30k_root):
    """The dictionary and the splits, read once for the session."""
    return mdata.load_multi30k(multi30k_root)


def small(vocab_size: int = 12, seed: int = 2, **overrides) -> Transformer:
    """A small random Transformer in eval mode, its embeddings scaled up (and EOS's twice more) so that its
    translations differ and end at different steps."""
    torch.manual_seed(seed)
    model = Transformer(vocab_size, **{"N": 2, "d_model": 16, "d_ff": 32, "h": 2, "P_drop": 0.0, **overrides})
    with torch.no_grad():
        model.embedding.weight.mul_(3.0)
        model.embedding.weight[EOS].mul_(2.0)
    return model.eval()


def sources(vocab_size: int = 12, lengths=(5, 3, 7, 2), seed: int = 1) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.cat([torch.randint(4, vocab_size, (n - 1,), generator=g), torch.tensor([EOS])]) for n in lengths]


# --------------------------------------------------------------------------- Sec. 3: the model


def test_sinusoidal_positions_are_sec_3_5():
    pe = sinusoidal_positions(50, 16).double()
    pos, i = 7, 3
    assert pe[pos, 2 * i] == pytest.approx(math.sin(pos / 10000 ** (2 * i / 16)), abs=1e-6)
    assert pe[pos, 2 * i + 1] == pytest.approx(math.cos(pos / 10000 ** (2 * i / 16)), abs=1e-6)
    # "for any fixed offset k, PE_pos+k can be represented as a linear function of PE_pos": a rotation per pair
    k = 5
    omega = 1 / 10000 ** (torch.arange(0, 16, 2, dtype=torch.float64) / 16)
    c, s = torch.cos(k * omega), torch.sin(k * omega)
    sin, cos = pe[:-k, 0::2], pe[:-k, 1::2]
    torch.testing.assert_close(pe[k:, 0::2], sin * c + cos * s, atol=1e-6, rtol=0)
    torch.testing.assert_close(pe[k:, 1::2], cos * c - sin * s, atol=1e-6, rtol=0)


def test_attention_of_a_layer_is_pytorchs_with_the_padding_mask():
    """An encoder layer's self-attention: Eq. 1 per head on the projections, padded keys never attended to."""
    model = small()
    src = torch.nn.utils.rnn.pad_sequence(sources(), batch_first=True, padding_value=PAD)
    x = model.embed(src)
    mask = (src != PAD)[:, None, None, :]
    attn = model.encoder[0].self_attn
    Q, K, V = (W(x).view(4, -1, 2, 8).transpose(1, 2) for W in (attn.W_Q, attn.W_K, attn.W_V))
    expected = attn.W_O(F.scaled_dot_product_attention(Q, K, V, attn_mask=mask).transpose(1, 2).flatten(-2))
    torch.testing.assert_close(attn(x, mask=mask), expected)
    attn.keep_weights = True
    attn(x, mask=mask)
    assert (attn.weights[3, :, :, 2:] == 0).all()                      # sentence 3 has 2 real tokens


def test_an_output_never_depends_on_a_later_target_token():
    model = small()
    src = sources()[0][None]
    prev = torch.tensor([[EOS, 5, 6, 7, 8, 9]])
    logits = model(src, prev)
    changed = prev.clone()
    changed[0, 3:] = torch.tensor([4, 11, 10])
    other = model(src, changed)
    torch.testing.assert_close(other[0, :3], logits[0, :3])
    assert not torch.allclose(other[0, 3:], logits[0, 3:])
    y = model.embed(prev).detach().requires_grad_()                     # and no gradient flows back from the future
    memory, src_mask = model.encode(src)
    out = y
    for layer in model.decoder:
        out = layer(out, memory, src_mask, causal_mask(6))
    (out[0, 2] * torch.randn(16)).sum().backward()                    # (a plain sum after LayerNorm is constant)
    assert y.grad[0, 3:].abs().sum() == 0 and y.grad[0, :3].abs().sum() > 0


def test_padding_does_not_change_the_real_tokens():
    model = small()
    src = sources()
    tgt = [torch.tensor([5, 6, EOS]), torch.tensor([7, 8, 9, 10, 11, EOS]), torch.tensor([4, EOS]),
           torch.tensor([9, 9, 9, EOS])]
    batch_src, batch_prev, _ = mdata.collate(src, tgt)
    memory, _ = model.encode(batch_src)
    logits = model(batch_src, batch_prev)
    for i, (s, t) in enumerate(zip(src, tgt)):
        alone_src, alone_prev, _ = mdata.collate([s], [t])
        torch.testing.assert_close(model.encode(alone_src)[0][0], memory[i, : len(s)], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(model(alone_src, alone_prev)[0], logits[i, : len(t)], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("chunks", [[1] * 7, [4, 1, 2]])
def test_the_incremental_decoder_equals_the_full_one(chunks):
    model = small()
    src = torch.nn.utils.rnn.pad_sequence(sources(), batch_first=True, padding_value=PAD)
    words = torch.randint(4, 12, (4, 6), generator=torch.Generator().manual_seed(2))
    prev = torch.cat([torch.full((4, 1), EOS), words], 1)
    memory, src_mask = model.encode(src)
    full = model.decode(prev, memory, src_mask)
    state, outs, start = model.init_state(), [], 0
    for n in chunks:
        outs.append(model.decode(prev[:, start:start + n], memory, src_mask, state))
        start += n
    assert state.step == 7 and len(state.self_attn[0]) == 7 and len(state.cross_attn[0]) == src.size(1)
    torch.testing.assert_close(torch.cat(outs, 1), full, atol=1e-5, rtol=1e-5)


def test_shared_embedding_scaled_on_the_way_in_and_reused_for_the_output():
    model = small(P_drop=0.0)
    tokens = torch.tensor([[4, 5]])
    scaled = model.embedding.weight[[4, 5]][None] * 4                     # sqrt(d_model) = 4
    torch.testing.assert_close(model.embed(tokens), scaled + model.PE[:2])
    y = torch.randn(1, 2, 16)
    torch.testing.assert_close(model.output(y), y @ model.embedding.weight.T)
    outside_the_stacks = [n for n, _ in model.named_parameters() if not n.startswith(("encoder.", "decoder."))]
    assert outside_the_stacks == ["embedding.weight"]                   # one matrix: in, in, out (Sec. 3.4)
    assert (Transformer(20, N=1, d_model=8, d_ff=8, h=2).embedding.weight[PAD] == 0).all()
    learned = Transformer(20, N=1, d_model=8, d_ff=8, h=2, positions="learned", max_positions=16)
    assert learned.position_embedding.weight.shape == (16, 8)
    with pytest.raises(ValueError, match="longer than max_positions"):
        learned.embed(torch.ones(1, 17, dtype=torch.long))


# --------------------------------------------------------------------------- Sec. 6: decoding


def test_beam_one_is_greedy_search():
    model = small()
    src = sources(lengths=(5, 3, 7, 2, 4, 6))
    greedy = translate.translate(model, src, beam=1, max_len=8)
    assert greedy == translate.translate(model, src, beam=1, max_len=8, incremental=False)
    assert greedy == translate.translate(model, src, beam=1, max_len=8, batch_size=2)
    batch = torch.nn.utils.rnn.pad_sequence(src, batch_first=True, padding_value=PAD)
    assert translate.beam_search(model, batch, beam=1, max_len=8) == translate.greedy(model, batch, max_len=8)
    lengths = {len(h) for h in greedy}
    assert len(lengths) > 1 and min(lengths) < 8                       # some end early: the EOS logic is exercised


@pytest.mark.parametrize("beam, lenpen", [(2, 1.0), (5, 0.6)])
def test_beam_search_incremental_recomputed_and_batched_agree(beam, lenpen):
    model = small()
    src = sources(lengths=(5, 3, 7, 2, 4, 6))
    ours = translate.translate(model, src, beam=beam, lenpen=lenpen, max_len=9)
    assert ours == translate.translate(model, src, beam=beam, lenpen=lenpen, max_len=9, incremental=False)
    assert ours == [translate.translate(model, [s], beam=beam, lenpen=lenpen, max_len=9)[0] for s in src]
    assert all(EOS not in h and PAD not in h and len(h) <= 9 for h in ours)


@pytest.mark.parametrize("lenpen", [1.0, 0.5, 2.0])
def test_a_beam_wider_than_every_prefix_finds_the_best_sequence(lenpen):
    """Two words and max_len 3: a beam of 128 keeps every prefix, so beam search must return the sequence of the
    highest score / length ** lenpen among all 4 + 16 + 64 (fairseq's rules: no PAD, no EOS first, EOS at the end)."""
    model = small(vocab_size=6, seed=3)
    src = sources(vocab_size=6, lengths=(4,))[0][None]

    def score(words):
        prev = torch.tensor([[EOS, *words]])
        lprobs = model(src, prev).log_softmax(-1)[0]
        return sum(lprobs[t, tok].item() for t, tok in enumerate([*words, EOS])) / (len(words) + 1) ** lenpen

    allowed = [0, 3, 4, 5]                                             # every symbol but PAD and EOS
    candidates = [w for n in (1, 2, 3) for w in itertools.product(allowed, repeat=n)]
    best = max(candidates, key=score)
    assert translate.beam_search(model, src, beam=128, max_len=3, lenpen=lenpen)[0] == list(best)


# --------------------------------------------------------------------------- BLEU


def multi_bleu(hypotheses: list[str], references: list[str]) -> float:
    """multi-bleu.perl's (and fairseq's scorer's) corpus BLEU-4 written out, as the oracle sacrebleu is checked
    against: clipped n-gram matches summed over the corpus, geometric mean, brevity penalty."""
    matches, totals, hyp_len, ref_len = [0] * 4, [0] * 4, 0, 0
    for hyp, ref in zip(hypotheses, references):
        h, r = hyp.split(), ref.split()
        hyp_len, ref_len = hyp_len + len(h), ref_len + len(r)
        for n in range(1, 5):
            hn = Counter(tuple(h[i:i + n]) for i in range(len(h) - n + 1))
            rn = Counter(tuple(r[i:i + n]) for i in range(len(r) - n + 1))
            matches[n - 1] += sum(min(c, rn[g]) for g, c in hn.items())
            totals[n - 1] += max(len(h) - n + 1, 0)
    if min(matches) == 0:
        return 0.0
    brevity = min(1.0, math.exp(1 - ref_len / hyp_len))
    return 100 * brevity * math.exp(sum(math.log(m / t) for m, t in zip(matches, totals)) / 4)


def test_bleu_of_the_identity_is_100_and_sacrebleu_agrees_with_multi_bleu(multi30k):
    _, splits = multi30k
    refs = splits["test2016"].references()
    assert sum(len(r.split()) for r in refs) == 12103                  # reflen of the published line (41.02)
    assert translate.bleu(refs, refs) == pytest.approx(100.0)
    g = torch.Generator().manual_seed(0)
    noisy = []                                                          # drop and repeat words: every kind of error
    for r in refs:
        words = r.split()
        keep = [w for w in words if torch.rand(1, generator=g).item() > 0.15]
        noisy.append(" ".join(keep + keep[:1] if torch.rand(1, generator=g).item() < 0.3 else keep))
    score = translate.bleu_score(noisy, refs)
    assert 20 < score.score < 90 and score.score == pytest.approx(multi_bleu(noisy, refs), abs=1e-9)
    line = translate.fairseq_line(score)
    assert line.startswith(f"BLEU4 = {score.score:.2f}, ") and "reflen=12103)" in line
    assert translate.bleu(["der hund ."], ["ein hund ."]) == pytest.approx(multi_bleu(["der hund ."], ["ein hund ."]))
    shipped = train.PAPER_DIR / "results" / "translations.test2016.de"
    if shipped.exists():                                                # and on our own output, once it is committed
        ours = shipped.read_text(encoding="utf-8").splitlines()
        assert translate.bleu(ours, refs) == pytest.approx(multi_bleu(ours, refs), abs=1e-9)


# --------------------------------------------------------------------------- Sec. 5: loss, schedule, averaging


def test_label_smoothed_loss_against_the_smoothed_distribution():
    torch.manual_seed(0)
    V, eps = 7, 0.1
    logits, target = torch.randn(2, 5, V), torch.tensor([[4, 5, 2, PAD, PAD], [6, 2, 3, 4, 2]])
    loss, nll, n = train.label_smoothed_nll(logits, target, eps)
    real = target != PAD
    q = torch.full((2, 5, V), eps / V) + (1 - eps) * F.one_hot(target, V)   # (1 - eps) on the target + eps / V
    direct = -(q * logits.log_softmax(-1)).sum(-1)[real].sum()
    assert n == 8
    torch.testing.assert_close(loss, direct)
    torch.testing.assert_close(nll, F.cross_entropy(logits[real], target[real], reduction="sum"))
    torch.testing.assert_close(loss, F.cross_entropy(logits[real], target[real], label_smoothing=eps,
                                                     reduction="sum"))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_label_smoothed_loss_gradient_is_autograds(dtype):
    """The written-out gradient (softmax - q) against autograd through the direct computation, for the loss and for
    the NLL, with the bf16 logits of autocast too."""
    torch.manual_seed(0)
    V, eps = 11, 0.1
    target = torch.tensor([[4, 5, 2, PAD], [6, 2, 3, 10]])
    real = target != PAD
    for weights in ((1.0, 0.0), (0.3, 2.0)):
        logits = torch.randn(2, 4, V, dtype=dtype, requires_grad=True)
        loss, nll, _ = train.label_smoothed_nll(logits, target, eps)
        (weights[0] * loss + weights[1] * nll).backward()
        direct_logits = logits.detach().clone().requires_grad_()
        q = torch.full((2, 4, V), eps / V) + (1 - eps) * F.one_hot(target, V)
        lprobs = direct_logits.float().log_softmax(-1)
        direct = -(q * lprobs).sum(-1)[real].sum()
        direct_nll = F.nll_loss(lprobs[real], target[real], reduction="sum")
        (weights[0] * direct + weights[1] * direct_nll).backward()
        assert logits.grad.dtype == dtype and logits.grad[~real].abs().max() == 0
        torch.testing.assert_close(logits.grad, direct_logits.grad)


def test_the_inverse_square_root_schedule_of_fairseq():
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.Adam(model.parameters())
    s = train.InverseSqrtSchedule(opt, 0.005, 2000)
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-7)
    assert s.lr(1000) == pytest.approx(1e-7 + (0.005 - 1e-7) / 2)
    assert s.lr(2000) == pytest.approx(0.005) and s.lr(8000) == pytest.approx(0.0025)
    # Eq. 3's shape: d_model^-0.5 min(u^-0.5, u warmup^-1.5), scaled so the peak is --lr
    eq3 = [min(u ** -0.5, u * 2000 ** -1.5) for u in (500, 2000, 4500)]
    assert [s.lr(u) for u in (2000, 4500)] == pytest.approx([0.005 * e / eq3[1] for e in eq3[1:]])
    s.update(lambda: model(torch.ones(1, 2)).sum(), model, opt)
    assert s.updates == 1 and opt.param_groups[0]["lr"] == pytest.approx(s.lr(1))
    other = train.InverseSqrtSchedule(torch.optim.Adam(model.parameters()), 0.005, 2000)
    other.load_state_dict(s.state_dict())
    assert other.updates == 1 and other.optimizer.param_groups[0]["lr"] == pytest.approx(s.lr(1))


def test_checkpoint_averaging_keeps_the_last_complete_epochs():
    model = torch.nn.Linear(1, 1, bias=False)
    last = train.LastEpochs(model, keep=2, patience=10, complete=lambda epoch: epoch != 4)
    history = []
    for epoch, w in enumerate([1.0, 2.0, 4.0, 8.0], start=1):                # epoch 4 cut short by --max-updates
        model.weight.data.fill_(w)
        history.append({"epoch": epoch, "val_loss": 1.0, "val_nll": 0.0})
        assert last(history) is None
    assert last.epochs == [2, 3] and last.average()["weight"].item() == pytest.approx(3.0)
    assert history[-1]["val_ppl"] == pytest.approx(1.0)
    again = train.LastEpochs(model, keep=2, patience=10, complete=lambda epoch: True)
    again.load_state_dict(last.state_dict())
    assert again.epochs == [2, 3] and again.average()["weight"].item() == pytest.approx(3.0)
    stop = train.LastEpochs(model, keep=2, patience=2, complete=lambda epoch: True)
    assert stop([{"epoch": 1, "val_loss": 1.0}]) is None
    assert "no better val_loss for 2 epochs" in stop([{"epoch": 1, "val_loss": 1.0}, {"epoch": 2, "val_loss": 1.5},
                                                      {"epoch": 3, "val_loss": 1.2}])


def test_averaging_drops_weights_no_final_average_can_include():
    """With keep 3, patience 4 and a last complete epoch 12: while the validation loss falls, only the epochs after
    best + patience - keep (or from final - keep + 1 on) can still be averaged; the run's average is unchanged."""
    model = torch.nn.Linear(1, 1, bias=False)
    last = train.LastEpochs(model, keep=3, patience=4, complete=lambda epoch: True, final=12)
    full = train.LastEpochs(model, keep=3, patience=4, complete=lambda epoch: True)
    losses = [5.0, 4.0, 3.0, 3.5, 3.6, 2.0, 2.5, 2.6, 2.7, 2.8]               # stops at epoch 10 (best 6, patience 4)
    history, stopped = [], None
    for epoch, val_loss in enumerate(losses, start=1):
        model.weight.data.fill_(float(epoch))
        history.append({"epoch": epoch, "val_loss": val_loss})
        stopped = last(history)
        full([dict(h) for h in history])
        if epoch == 5:
            assert last.epochs == [5]                # best 3: a stop at >= 7 averages epochs 5-7 at the earliest
        if epoch == 6:
            assert last.epochs == []                 # best 6: a stop at >= 10 averages epochs 8-10 at the earliest
    assert stopped is not None and last.epochs == full.epochs == [8, 9, 10]
    assert last.average()["weight"].item() == full.average()["weight"].item() == pytest.approx(9.0)
    late = train.LastEpochs(model, keep=3, patience=4, complete=lambda epoch: True, final=5)
    history = [{"epoch": e, "val_loss": 5.0 - e} for e in range(1, 6)]   # always improving: the last 3 epochs
    for epoch in range(1, 6):
        model.weight.data.fill_(float(epoch))
        late(history[:epoch])
    assert late.epochs == [3, 4, 5]


# --------------------------------------------------------------------------- Table 3


def test_table3_parameter_counts():
    # our count with the paper's vocabulary (Sec. 5.1: shared, about 37,000 tokens); the table's figure beside
    ours = {row: table3_parameters(row) for row, r in TABLE3.items() if r["params_M"] is not None}
    assert ours["base"] == 63_082_496 and ours["big"] == 214_245_376
    differences = {row: round(TABLE3[row]["params_M"] - n / 1e6, 2) for row, n in ours.items()}
    assert differences == {"base": 1.92, "B1": 2.01, "B2": 1.65, "C1": 2.34, "C2": 1.63, "C3": 2.2, "C4": 1.17,
                           "C5": 4.11, "C6": 2.51, "C7": 1.73, "big": -1.25}
    # one shared matrix of 41,000 rows reproduces every row of the base family exactly; big is then 5M over
    fitted = {row: round(table3_parameters(row, TABLE3_FITTED_VOCABULARY) / 1e6) for row in ours}
    assert {row: n for row, n in fitted.items() if row != "big"} == {row: TABLE3[row]["params_M"]
                                                                     for row in ours if row != "big"}
    assert fitted["big"] == 218
    # ... and no vocabulary fits both C5 and big: they differ in d_ff alone, 50.36M parameters, the table says 45
    assert table3_parameters("big", 2) - table3_parameters("C5", 2) == 12 * (2 * 1024 * 2048 + 2048)
    assert abs((TABLE3["big"]["params_M"] - TABLE3["C5"]["params_M"]) - 50.36) > 1


def test_named_sizes():
    with torch.device("meta"):
        base, big, a1 = Transformer.base(), Transformer.big(), Transformer.table3("A1")
        tiny = Transformer.tiny(9712)
    assert (base.N, base.d_model, len(base.encoder), len(base.decoder)) == (6, 512, 6, 6)
    assert base.encoder[0].ffn.W_1.out_features == 2048 and base.encoder[0].self_attn.h == 8
    assert big.d_model == 1024 and big.decoder[0].self_attn.h == 16 and big.dropout.p == 0.3
    assert a1.encoder[0].self_attn.d_k == 512 and a1.encoder[0].self_attn.h == 1
    assert count_parameters(tiny) == 2_568_192 and tiny.dropout.p == 0.3 and len(tiny.encoder) == 4
    with pytest.raises(ValueError, match="unknown Table 3 row"):
        Transformer.table3("F")
    with pytest.raises(ValueError, match="positions"):
        Transformer(10, positions="rotary")


# --------------------------------------------------------------------------- the data


def test_multi30k_dictionary_splits_and_bpe(multi30k, multi30k_root):
    vocab, splits = multi30k
    assert len(vocab) == 9712 and vocab.words[:4] == list(SPECIALS)
    assert {k: len(v) for k, v in splits.items()} == {"train": 29000, "valid": 1014, "test2016": 1000,
                                                      "test2017": 1000, "coco": 461}
    pair = splits["test2016"]
    assert pair.src[0][-1] == EOS and mdata.decode(vocab, pair.src[0], bpe=True) == pair.src_lines[0]
    assert mdata.remove_bpe("ein spiel@@ haus@@ chen .") == "ein spielhauschen ."
    # a user's own tokenised text: subword-nmt with the data's merges gives the shared files' segmentation
    from subword_nmt.apply_bpe import BPE

    with open(mdata.code_file(multi30k_root), encoding="utf-8") as codes:
        bpe = BPE(codes)
    lines = pair.src_lines[:200] + pair.tgt_lines[:200]
    assert [bpe.process_line(mdata.remove_bpe(line)) for line in lines] == lines


def test_token_batches(multi30k):
    _, splits = multi30k
    data = splits["valid"]
    n = len(mdata.TokenBatches(data, max_tokens=2048).batches)
    loader = mdata.TokenBatches(data, max_tokens=2048, seed=3, shuffle=True, max_updates=n + 2)
    assert sum(b[0].size(0) for b in loader.batches) == len(data) and len(loader.batches) == n
    for src, prev, tgt in loader.batches:
        assert src.size(0) * max(src.size(1), tgt.size(1)) <= 2048
        assert src.size(0) % 8 == 0 or src is loader.batches[-1][0] or len(loader.batches) == 1
        assert (prev[:, 0] == EOS).all()                                # EOS, then the target without its EOS
        assert torch.equal(prev[:, 1:], torch.where(tgt[:, :-1] == EOS, PAD, tgt[:, :-1]))
    loader.set_epoch(0)
    first = [b[0].data_ptr() for b in loader]
    loader.set_epoch(0)
    assert [b[0].data_ptr() for b in loader] == first                  # an epoch's order: (seed, epoch) alone
    loader.set_epoch(1)
    assert len(first) == n and len(list(loader)) == 2 and loader.epochs_for(n + 2) == 2   # --max-updates cuts


# --------------------------------------------------------------------------- train.py, translate.py


@pytest.fixture
def tiny(monkeypatch, multi30k):
    """--quick on 48 sentence pairs (3 batches of <= 256 tokens), 4 of each test set, translations of <= 6 tokens;
    the data read once per session."""
    monkeypatch.setattr(train, "QUICK", {"train": 48, "valid": 16, "test": 4, "max_tokens": 256, "epochs": 3,
                                         "max_len": 6})
    monkeypatch.setattr(train, "load_multi30k", lambda root=None: multi30k)


def _run(root, out, *extra):
    return train.main(["--quick", "--data-dir", str(root), "--out", str(out), "--no-progress", "--amp", "off",
                       *extra])


def test_help_and_bad_arguments(capsys):
    with pytest.raises(SystemExit) as e:
        train.parse_args(["--help"])
    assert e.value.code == 0 and "--max-updates" in capsys.readouterr().out
    args = train.parse_args([])
    assert (args.batch_size, args.lr, args.warmup, args.max_updates, args.dropout, args.label_smoothing, args.beam,
            args.average, args.patience) == (8192, 0.005, 2000, 8000, 0.3, 0.1, 5, 10, 10)
    for bad in (["--dropout", "1.5"], ["--label-smoothing", "-0.1"], ["--beam", "0"]):
        with pytest.raises(SystemExit) as e:
            train.parse_args(bad)
        assert e.value.code == 2


def test_quick_end_to_end_evaluate_and_translate(multi30k_root, tmp_path, tiny, capsys, monkeypatch):
    assert _run(multi30k_root, tmp_path / "q", "--max-updates", "5") == 0
    out = tmp_path / "q"
    record = json.loads((out / "metrics.json").read_text())
    assert record["quick"] and record["updates"] == 5 and record["averaged_epochs"] == [1]   # epoch 2: 2 of 3
    assert record["model"] == {"module": "Transformers/transformer/model.py", "class": "Transformer", "weights":
                               "model.pt", "kwargs": {"vocab_size": 9712, "N": 4, "d_model": 128, "d_ff": 256,
                                                      "h": 4, "P_drop": 0.3}}
    assert record["metrics"] == []                                     # --max-updates 5 is not the paper's setup
    translations = (out / "translations.test2016.de").read_text().splitlines()
    references = train.load_multi30k()[1]["test2016"].subset(4).references()
    assert len(translations) == 4
    assert record["bleu"]["test2016"] == pytest.approx(translate.bleu(translations, references), abs=0.01)
    capsys.readouterr()
    assert _run(multi30k_root, tmp_path / "e", "--evaluate", str(out / "model.pt")) == 0
    assert capsys.readouterr().out.count("BLEU4 = ") == 3
    # translate.py: raw tokenised English in, BPE applied with the data's merges, German out
    (tmp_path / "in.en").write_text("a man is riding a bike .\ntwo dogs play in the snow .\n")
    assert translate.main(["--weights", str(out / "model.pt"), "--input", str(tmp_path / "in.en"), "--output",
                           str(tmp_path / "out.de"), "--beam", "2", "--max-len", "4", "--data-dir",
                           str(multi30k_root)]) == 0
    assert len((tmp_path / "out.de").read_text().splitlines()) == 2
    monkeypatch.setattr("sys.stdin", io.StringIO("a dog .\n"))
    assert translate.main(["--weights", str(out / "model.pt"), "--greedy", "--max-len", "3", "--data-dir",
                           str(multi30k_root)]) == 0
    # python -m common.verify: the committed translations re-scored, and made afresh by the shipped model
    vocab, splits = train.load_multi30k()
    monkeypatch.setattr(train, "load_multi30k", lambda root=None: (vocab, {**splits, "test2016":
                                                                           splits["test2016"].subset(4)}))
    record["metrics"] = [{"name": "test2016_bleu", "ours": record["bleu"]["test2016"]}]
    checks = train.verify(out, record, fast=False)
    assert len(checks) == 2 and all(c.agrees for c in checks)


def test_the_benchmark_runs_on_tiny_settings(multi30k, tmp_path, monkeypatch):
    from Transformers.transformer.experiments import benchmark

    monkeypatch.setattr(benchmark, "load_multi30k", lambda root=None: multi30k)
    assert benchmark.OUT == train.PAPER_DIR / "results" / "experiments" / "benchmark"
    assert benchmark.main(["--weights", str(tmp_path / "none.pt"), "--sentences", "3", "--beam", "2", "--max-len",
                           "4", "--updates", "1", "--repeats", "1", "--max-tokens", "512", "--amp", "off", "--out",
                           str(tmp_path)]) == 0
    report = (tmp_path / "cpu.txt").read_text()
    assert "same translations: yes" in report and "torch.nn.Transformer, same size" in report


def test_resumed_run_equals_uninterrupted_run(multi30k_root, tmp_path, tiny, monkeypatch):
    argv = ["--epochs", "3", "--warmup", "2"]
    assert _run(multi30k_root, tmp_path / "once", *argv) == 0
    real = train.LastEpochs.__call__

    def interrupt_after_epoch_2(self, history):
        reason = real(self, history)
        if len(history) == 2:
            raise KeyboardInterrupt
        return reason

    monkeypatch.setattr(train.LastEpochs, "__call__", interrupt_after_epoch_2)
    assert _run(multi30k_root, tmp_path / "twice", *argv) == 130
    monkeypatch.setattr(train.LastEpochs, "__call__", real)
    assert _run(multi30k_root, tmp_path / "twice", *argv, "--resume") == 0
    a, b = (load_checkpoint(tmp_path / d / "model.pt") for d in ("once", "twice"))
    assert all(torch.equal(a[k], b[k]) for k in a)                     # the average of the same three epochs
    runs = [json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("once", "twice")]
    assert runs[0]["averaged_epochs"] == runs[1]["averaged_epochs"] == [1, 2, 3]
    assert (tmp_path / "once" / "translations.coco.de").read_text() == \
        (tmp_path / "twice" / "translations.coco.de").read_text()


def test_bad_files_are_one_error_line(multi30k_root, tmp_path, tiny, capsys):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "checkpoint.pt").write_bytes(b"not a checkpoint")
    assert _run(multi30k_root, tmp_path / "run", "--resume") == 2
    assert "checkpoint.pt" in one_error_line(capsys)
    weights = tmp_path / "w"
    weights.mkdir()
    (weights / "vocab.json").write_text(json.dumps(train.load_multi30k()[0].words))
    torch.save({"x": Payload()}, weights / "evil.pt")
    assert _run(multi30k_root, tmp_path / "e", "--evaluate", str(weights / "evil.pt")) == 2
    one_error_line(capsys)
    torch.save(Transformer(9712, N=1, d_model=16, d_ff=16, h=2).state_dict(), weights / "other.pt")
    assert _run(multi30k_root, tmp_path / "e", "--evaluate", str(weights / "other.pt")) == 2
    assert "other.pt" in one_error_line(capsys)
    (weights / "vocab.json").write_text("[not json")
    assert _run(multi30k_root, tmp_path / "e", "--evaluate", str(weights / "other.pt")) == 2
    assert "vocab.json" in one_error_line(capsys)
    assert translate.main(["--weights", str(weights / "missing.pt"), "--input", str(weights / "vocab.json")]) == 2
    one_error_line(capsys)


def test_a_corrupted_data_file_is_an_error_not_a_traceback(multi30k_root, tmp_path, capsys):
    import shutil

    root = tmp_path / "data"
    shutil.copytree(multi30k_root, root)
    with open(root / "multi30k/bpe10k-en-de/train.de", "a", encoding="utf-8") as f:
        f.write("ein zusätzlicher satz .\n")
    assert train.main(["--quick", "--data-dir", str(root), "--out", str(tmp_path / "q"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert lines[0].startswith("error: multi30k_bpe: the copy in the data root is corrupted")
    assert "train.de" in err and "Traceback" not in err and sum(ln.startswith("error") for ln in lines) == 1
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "vocab.json").write_text(json.dumps(["<s>", "<pad>", "</s>", "<unk>", "a"]))
    torch.save(Transformer.tiny(5).state_dict(), tmp_path / "w" / "model.pt")
    (tmp_path / "bad.en").write_bytes(b"\xff\xfe not utf-8\n")
    assert translate.main(["--weights", str(tmp_path / "w" / "model.pt"), "--input", str(tmp_path / "bad.en")]) == 2
    assert "UTF-8" in one_error_line(capsys)
