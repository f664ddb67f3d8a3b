"""Deep autoencoder of Hinton & Salakhutdinov (2006), "Reducing the Dimensionality of Data with
Neural Networks", Science 313:504-507, and its supporting online material (SOM).

Read it next to the paper's Fig. 1: a stack of RBMs is pretrained greedily (left), then
unrolled into an encoder and a mirrored decoder that share the pretrained weights as
W and W^T (middle), then fine-tuned end to end by backpropagation (right).

Notation (paper, Eq. 1-2): visible units v_i with biases b_i, hidden units h_j with biases b_j,
weights w_ij. An RBM's energy is E(v, h) = -sum b_i v_i - sum b_j h_j - sum v_i h_j w_ij.
"""

from __future__ import annotations

import torch
from torch import nn

# Fig. 1 / Fig. 2A: the MNIST autoencoder 784-1000-500-250-30.
MNIST_LAYERS = (784, 1000, 500, 250, 30)

# SOM, "Details of the pretraining": weights start N(0, 0.1^2), biases at 0.
INIT_STD = 0.1


class RBM(nn.Module):
    """A restricted Boltzmann machine with logistic visible units.

    ``hidden="logistic"``: binary stochastic hidden units, p(h_j = 1 | v) = sigma(b_j + sum_i v_i w_ij).
    ``hidden="linear"``: the code layer's units (paper, p. 505): real-valued states drawn from a
    unit-variance Gaussian whose mean is b_j + sum_i v_i w_ij.
    Visible units are logistic in both cases: p(v_i = 1 | h) = sigma(b_i + sum_j h_j w_ij).
    """

    def __init__(self, n_visible: int, n_hidden: int, hidden: str = "logistic", generator=None):
        super().__init__()
        if hidden not in ("logistic", "linear"):
            raise ValueError(f"hidden must be 'logistic' or 'linear', got {hidden!r}")
        self.hidden = hidden
        self.w = nn.Parameter(torch.randn(n_visible, n_hidden, generator=generator) * INIT_STD)  # w_ij
        self.b_vis = nn.Parameter(torch.zeros(n_visible))  # b_i
        self.b_hid = nn.Parameter(torch.zeros(n_hidden))  # b_j

    def hidden_mean(self, v: torch.Tensor) -> torch.Tensor:
        """E[h | v]: the probabilities of logistic units, the Gaussian means of linear ones."""
        x = v @ self.w + self.b_hid
        return torch.sigmoid(x) if self.hidden == "logistic" else x

    def sample_hidden(self, mean: torch.Tensor, generator=None) -> torch.Tensor:
        if self.hidden == "logistic":
            return (torch.rand(mean.shape, generator=generator, device=mean.device) < mean).to(mean.dtype)
        return mean + torch.randn(mean.shape, generator=generator, device=mean.device)

    def visible_prob(self, h: torch.Tensor) -> torch.Tensor:
        """The 'confabulation' of the paper: p(v_i = 1 | h)."""
        return torch.sigmoid(h @ self.w.T + self.b_vis)

    @torch.no_grad()
    def cd1(self, v0: torch.Tensor, generator=None) -> tuple[dict[str, torch.Tensor], float]:
        """One step of contrastive divergence (paper, Eq. 1).

        Returns the gradient estimate <v_i h_j>_data - <v_i h_j>_recon (and its bias analogues),
        averaged over the mini-batch, and the squared reconstruction error per example. As in the
        authors' code, the data-driven statistics use the hidden probabilities, the reconstruction is
        driven by sampled hidden states, and the reconstruction's statistics use probabilities again.
        """
        h0 = self.hidden_mean(v0)
        v1 = self.visible_prob(self.sample_hidden(h0, generator))
        h1 = self.hidden_mean(v1)
        n = v0.shape[0]
        grads = {
            "w": (v0.T @ h0 - v1.T @ h1) / n,
            "b_vis": (v0 - v1).mean(0),
            "b_hid": (h0 - h1).mean(0),
        }
        return grads, float(((v0 - v1) ** 2).sum() / n)


def rbm_stack(layers=MNIST_LAYERS, generator=None) -> nn.ModuleList:
    """The RBMs of Fig. 1 (left): logistic hidden units, except the top one whose hidden
    units are the linear code units."""
    last = len(layers) - 2
    return nn.ModuleList(RBM(a, b, "linear" if k == last else "logistic", generator)
                         for k, (a, b) in enumerate(zip(layers[:-1], layers[1:])))


class DeepAutoencoder(nn.Module):
    """The unrolled autoencoder of Fig. 1 (middle and right).

    Encoder: logistic layers 784-1000-500-250, then a linear code layer of 30 units.
    Decoder: the mirror image, logistic all the way out to the 784 pixels.
    ``forward`` returns the decoder's logits (the pre-sigmoid input of the output units), so that
    the cross-entropy error of fine-tuning is computed stably; ``reconstruct`` gives pixels.
    """

    def __init__(self, layers=MNIST_LAYERS, generator=None):
        super().__init__()
        self.layers = tuple(layers)
        pairs = list(zip(self.layers[:-1], self.layers[1:]))
        self.encoder = nn.ModuleList(nn.Linear(a, b) for a, b in pairs)
        self.decoder = nn.ModuleList(nn.Linear(b, a) for a, b in reversed(pairs))
        with torch.no_grad():  # the same N(0, 0.1^2) start the RBMs get (used by --no-pretrain)
            for lin in [*self.encoder, *self.decoder]:
                lin.weight.copy_(torch.randn(lin.weight.shape, generator=generator) * INIT_STD)
                lin.bias.zero_()

    @classmethod
    def from_rbms(cls, rbms) -> "DeepAutoencoder":
        """Unroll a pretrained stack (Fig. 1, middle): encoder layer k uses W_k and b_j of RBM k;
        the decoder uses W_k^T and RBM k's visible biases b_i, in reverse order."""
        layers = [rbms[0].w.shape[0]] + [r.w.shape[1] for r in rbms]
        net = cls(layers)
        with torch.no_grad():
            for lin, rbm in zip(net.encoder, rbms):
                lin.weight.copy_(rbm.w.T)
                lin.bias.copy_(rbm.b_hid)
            for lin, rbm in zip(net.decoder, reversed(list(rbms))):
                lin.weight.copy_(rbm.w)
                lin.bias.copy_(rbm.b_vis)
        return net

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x: N x 784 pixels in [0, 1] (or N x 1 x 28 x 28) -> N x 30 code (linear units)."""
        h = x.flatten(1)
        for k, lin in enumerate(self.encoder):
            h = lin(h)
            if k < len(self.encoder) - 1:
                h = torch.sigmoid(h)
        return h

    def decode_logits(self, code: torch.Tensor) -> torch.Tensor:
        h = code
        for k, lin in enumerate(self.decoder):
            h = lin(h)
            if k < len(self.decoder) - 1:
                h = torch.sigmoid(h)
        return h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode_logits(self.encode(x))

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Pixels in [0, 1], N x 784."""
        return torch.sigmoid(self(x))


def squared_error_per_image(x: torch.Tensor, recon: torch.Tensor) -> torch.Tensor:
    """The metric of Fig. 2: squared error summed over the pixels of each image (pixels in [0, 1]),
    one number per image; the paper reports its mean over the test set."""
    return ((x.flatten(1) - recon.flatten(1)) ** 2).sum(1)


class PCA:
    """The baseline of Fig. 2: project onto the leading principal components of the training data
    (after subtracting its mean) and map back."""

    def __init__(self, x_train: torch.Tensor, n_components: int):
        x = x_train.flatten(1).double()
        if not 0 < n_components <= x.shape[1]:
            raise ValueError(f"n_components must be in [1, {x.shape[1]}], got {n_components}")
        self.mean = x.mean(0)
        xc = x - self.mean
        _, eigvecs = torch.linalg.eigh(xc.T @ xc / len(x))  # ascending eigenvalues
        self.components = eigvecs[:, -n_components:].flip(1)  # D x k, leading first

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return (x.flatten(1).double() - self.mean) @ self.components

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return (self.encode(x) @ self.components.T + self.mean).to(x.dtype)


def unrolled_layers(model: DeepAutoencoder) -> nn.Sequential:
    """Fig. 1 (right) as one chain of named layers that share ``model``'s weights: encoder 1, 2, ...
    (logistic), the linear code layer, decoder ..., 2, 1 (logistic) and the output layer (logits).
    It computes the same function as ``model``; the layer table (``common.summary``) reads it."""
    n = len(model.encoder)
    names = [f"encoder{k}" for k in range(1, n)] + ["code"] + [f"decoder{k}" for k in range(n - 1, 0, -1)]
    lins = [*model.encoder, *model.decoder]
    chain = nn.Sequential()
    for name, lin in zip(names + ["output"], lins):
        chain.add_module(name, lin if name in ("code", "output") else nn.Sequential(lin, nn.Sigmoid()))
    return chain
