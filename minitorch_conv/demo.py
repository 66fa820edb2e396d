"""`minitorch-conv demo`: the MNIST-1D table of Greydanus (2020), measured with our framework.

Logistic regression, an MLP and a CNN are trained on MNIST-1D as generated, and again with the
40 positions of every signal shuffled by one fixed permutation. Shuffling keeps every value and
destroys only the spatial order, so a model that sees no space (logistic regression, the MLP)
does as well as before, while the CNN, whose convolutions assume that neighbours belong together,
loses its lead: the chapter's "infinitely strong prior", measured.
"""
import time

import numpy as np

from . import _kernels, datasets, models, optim
from . import functional as F
from ._cli import MissingExtra, non_negative_int, positive, progress_bar, require  # noqa: F401 (MissingExtra)
from .random import manual_seed
from .tensor import tensor
from .train import accuracy

PAPER = {  # Greydanus (2020): test accuracy in %, (ordered, shuffled)
    "logreg": (32, 32),
    "mlp": (68, 68),
    "cnn": (94, 56),
}
PAPER_STEPS = 6000
QUICK_STEPS = 600


def train(model, data, steps=PAPER_STEPS, batch_size=100, lr=1e-2, seed=0, bar=None):
    """The paper's recipe: Adam on `steps` minibatches drawn with replacement; returns the test accuracy."""
    x_train, y_train, x_test, y_test = data
    rng = np.random.default_rng(seed)
    optimizer = optim.Adam(model.parameters(), lr=lr)
    for step in range(1, steps + 1):
        batch = rng.integers(0, len(x_train), batch_size)
        loss = F.cross_entropy(model(tensor(x_train[batch])), y_train[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if bar is not None:
            bar.update(1)
            if step % 50 == 0:
                bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    return accuracy(model, x_test, y_test)


def add_parser(commands):
    p = commands.add_parser(
        "demo", help="the MNIST-1D table of Greydanus (2020): a CNN's spatial prior, measured (the default)",
        description="Train logistic regression, an MLP and a CNN on MNIST-1D, ordered and shuffled, "
                    "and print the test accuracies beside the paper's. About two minutes on 2 cores.")
    p.add_argument("--steps", type=positive(int), default=PAPER_STEPS, help=f"Adam steps per model (default {PAPER_STEPS}, the paper's)")
    p.add_argument("--quick", action="store_const", const=QUICK_STEPS, dest="steps",
                   help=f"{QUICK_STEPS} steps per model: a preview in a fraction of the time")
    p.add_argument("--seed", type=non_negative_int, default=0, help="initialisation and minibatch order (default 0)")
    p.add_argument("--quiet", action="store_true", help="no progress bars or per-model lines")
    p.set_defaults(run=run)


def run(args):
    require("mnist1d")
    require("tqdm")
    start = time.perf_counter()
    say = (lambda *_: None) if args.quiet else (lambda text: print(text, flush=True))
    print("MNIST-1D (Greydanus 2020), generated offline: 4000 train / 1000 test signals of length 40, 10 classes")
    print(f"Adam lr 1e-2, batch 100, {args.steps} steps per model"
          + (" (the paper's)" if args.steps == PAPER_STEPS else f" (the paper's: {PAPER_STEPS})")
          + f", seed {args.seed}, {_kernels.get_num_threads()} threads", flush=True)
    ours, data_seconds = {}, 0.0
    for shuffled in (False, True):
        data_start = time.perf_counter()
        data = datasets.mnist1d(shuffle=shuffled)
        data_seconds += time.perf_counter() - data_start
        for name in models.NAMES:
            label = f"{models.LABELS[name]}, {'shuffled' if shuffled else 'ordered'}"
            manual_seed(args.seed)
            model = models.build(name, data[0].shape[1:])
            model_start = time.perf_counter()
            with progress_bar(args.steps, label, args.quiet) as bar:
                ours[name, shuffled] = train(model, data, steps=args.steps, seed=args.seed, bar=bar)
            say(f"  {label:<32} {100 * ours[name, shuffled]:5.1f}%  ({time.perf_counter() - model_start:.1f} s)")
    print()
    print(table(ours))
    print()
    print(verdict(ours))
    total = time.perf_counter() - start
    print(f"wall time: {total:.1f} s ({data_seconds:.1f} s generating the data, {total - data_seconds:.1f} s training)")


def table(ours):
    """Our accuracies beside the paper's, one row per model."""
    lines = [f"{'test accuracy':<22}{'ordered':^16}    {'shuffled':^16}",
             f"{'':<22}" + "    ".join(f"{'ours':>8}{'paper':>8}" for _ in range(2))]
    for name in models.NAMES:
        cells = "    ".join(f"{100 * ours[name, shuffled]:7.1f}%{PAPER[name][shuffled]:7d}%" for shuffled in (False, True))
        lines.append(f"{models.LABELS[name]:<22}{cells}")
    return "\n".join(lines)


def verdict(ours):
    """The chapter's point in two lines: the CNN's lead over the MLP, with and without spatial order."""
    lead = {shuffled: 100 * (ours["cnn", shuffled] - ours["mlp", shuffled]) for shuffled in (False, True)}
    return (f"CNN minus MLP: {lead[False]:+.1f} points on ordered signals, {lead[True]:+.1f} when shuffled "
            f"(paper: {PAPER['cnn'][0] - PAPER['mlp'][0]:+d}, {PAPER['cnn'][1] - PAPER['mlp'][1]:+d}):\n"
            "the convolution's prior that neighbours belong together pays only when they do.")
