"""`minitorch-conv train`: a chosen model on a chosen data set, by epochs, with checkpoints and curves.

Each epoch visits the training set once in an order drawn from (seed, epoch) alone, so a run
resumed from a checkpoint takes exactly the steps the uninterrupted run would have taken.
"""
import os
import time

import numpy as np

from . import datasets, models, optim
from . import functional as F
from ._cli import CommandError, check_writable, non_negative_int, positive, progress_bar, pyplot, require, save_figure
from .autograd import no_grad
from .random import manual_seed
from .serialization import load, save
from .tensor import tensor

HISTORY_KEYS = ("epoch", "loss", "train_accuracy", "test_accuracy", "seconds")


def accuracy(model, x, y, batch_size=1000):
    """The fraction of `x` that `model` classifies as `y`, in eval mode and without a graph."""
    model.eval()
    with no_grad():
        predictions = np.concatenate([model(tensor(x[i:i + batch_size])).numpy().argmax(1)
                                      for i in range(0, len(x), batch_size)])
    model.train()
    return float((predictions == y).mean())


def train_epoch(model, optimizer, x, y, batch_size, rng, bar=None):
    """One pass over (x, y) in minibatches, in the order given by `rng`; returns the mean loss."""
    order = rng.permutation(len(x))
    losses = []
    for start in range(0, len(x), batch_size):
        batch = order[start:start + batch_size]
        loss = F.cross_entropy(model(tensor(x[batch])), y[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.3f}", refresh=False)
    return float(np.mean(losses))


def add_parser(commands):
    p = commands.add_parser(
        "train", help="train a model on MNIST-1D or the 8x8 digits, with checkpoints",
        description="Train logistic regression, an MLP or a CNN with Adam; one log line per epoch.")
    p.add_argument("--data", choices=datasets.NAMES, default="digits",
                   help="mnist1d (1-D signals of length 40) or digits (scikit-learn's 8x8 images); default digits")
    p.add_argument("--model", choices=models.NAMES, default="cnn", help="default cnn")
    p.add_argument("--epochs", type=positive(int), default=10, help="train until this many epochs in all (default 10)")
    p.add_argument("--batch-size", type=positive(int), default=100, help="default 100")
    p.add_argument("--lr", type=positive(float), default=1e-2, help="Adam's learning rate (default 1e-2)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="initialisation and batch order (default 0)")
    p.add_argument("--checkpoint", metavar="PATH", help="save model, optimiser and history here after every epoch")
    p.add_argument("--resume", action="store_true", help="continue from --checkpoint PATH")
    p.add_argument("--plot", metavar="PATH", help="save the learning curves as a PNG")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def run(args):
    # Everything that can be refused is refused before any data is loaded or any step is taken.
    if args.resume and not args.checkpoint:
        raise CommandError("--resume needs --checkpoint PATH")
    if args.resume and not os.path.isfile(args.checkpoint):
        raise CommandError(f"--resume: no checkpoint at {args.checkpoint}")
    for path, what in ((args.checkpoint, "checkpoint"), (args.plot, "plot")):
        if path:
            check_writable(path, what)
    require("tqdm")
    if args.plot:
        pyplot()
    config = {"data": args.data, "model": args.model}
    x_train, y_train, x_test, y_test = datasets.load(args.data)
    manual_seed(args.seed)
    model = models.build(args.model, x_train.shape[1:])
    optimizer = optim.Adam(model.parameters(), lr=args.lr)
    history = {key: [] for key in HISTORY_KEYS}
    if args.resume:
        history = _restore(args.checkpoint, config, model, optimizer)
        optimizer.lr = args.lr
    done = len(history["epoch"])
    print(f"train: {models.LABELS[args.model]} on {args.data} ({len(x_train)} train / {len(x_test)} test), "
          f"Adam lr {args.lr:g}, batch {args.batch_size}, seed {args.seed}"
          + (f", resumed after epoch {done}" if args.resume else ""), flush=True)
    if done >= args.epochs:
        print(f"the checkpoint already holds {done} epoch(s); nothing to train (raise --epochs to continue)")
    steps_per_epoch = -(-len(x_train) // args.batch_size)
    for epoch in range(done + 1, args.epochs + 1):
        start = time.perf_counter()
        with progress_bar(steps_per_epoch, f"epoch {epoch}/{args.epochs}", args.quiet) as bar:
            loss = train_epoch(model, optimizer, x_train, y_train, args.batch_size,
                               np.random.default_rng([args.seed, epoch]), bar)
        row = (epoch, loss, accuracy(model, x_train, y_train), accuracy(model, x_test, y_test),
               time.perf_counter() - start)
        for key, value in zip(HISTORY_KEYS, row):
            history[key].append(value)
        print(f"epoch {epoch:3d}/{args.epochs}  loss {loss:.4f}  train {100 * row[2]:5.1f}%  "
              f"test {100 * row[3]:5.1f}%  {row[4]:.1f} s", flush=True)
        if args.checkpoint:
            _save_checkpoint(args.checkpoint, model, optimizer, history, config)
    final = accuracy(model, x_test, y_test)
    print(f"final test accuracy: {100 * final:.1f}% ({models.LABELS[args.model]} on {args.data}, "
          f"{len(history['epoch'])} epoch(s))")
    if args.checkpoint:
        print(f"checkpoint: {args.checkpoint}")
    if args.plot:
        plot_history(history, f"{models.LABELS[args.model]} on {args.data}", args.plot)
        print(f"learning curves: {args.plot}")


def _save_checkpoint(path, model, optimizer, history, config):
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "epoch": history["epoch"][-1], "history": history, "config": config}
    try:
        save(state, path)  # atomic: a crash leaves the previous epoch's file intact
    except OSError as error:
        raise CommandError(f"cannot write the checkpoint {path}: {error.strerror or error}") from None


def _restore(path, config, model, optimizer):
    """Load `path` into model and optimizer; returns the saved history."""
    try:
        state = load(path)
    except FileNotFoundError:
        raise CommandError(f"--resume: no checkpoint at {path}") from None
    except (OSError, ValueError) as error:
        raise CommandError(f"--resume: cannot read {path}: {error}") from None
    try:
        saved = state["config"]
        if saved != config:
            raise CommandError(f"--resume: {path} was written by --data {saved['data']} --model {saved['model']}, "
                               f"not --data {config['data']} --model {config['model']}")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        history = {key: [float(value) for value in state["history"][key]] for key in HISTORY_KEYS}
        history["epoch"] = [int(epoch) for epoch in history["epoch"]]
        return history
    except (KeyError, TypeError, ValueError) as error:
        raise CommandError(f"--resume: {path} is not a train checkpoint ({error})") from None


def plot_history(history, title, path):
    plt = pyplot()
    figure, (loss_axes, accuracy_axes) = plt.subplots(1, 2, figsize=(10, 4))
    loss_axes.plot(history["epoch"], history["loss"], "o-")
    loss_axes.set(xlabel="epoch", ylabel="mean training loss (cross-entropy)", yscale="log", title=title)
    accuracy_axes.plot(history["epoch"], [100 * a for a in history["train_accuracy"]], "o-", label="train")
    accuracy_axes.plot(history["epoch"], [100 * a for a in history["test_accuracy"]], "s-", label="test")
    accuracy_axes.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    accuracy_axes.legend()
    accuracy_axes.grid(alpha=0.3)
    loss_axes.grid(alpha=0.3)
    figure.tight_layout()
    save_figure(figure, path)
