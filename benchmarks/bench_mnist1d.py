"""MNIST-1D end to end: the paper's CNN (three Conv1d layers of 25 channels, kernel 5 then 3, stride 2,
padding 1, then Linear; Adam lr 1e-2, batch 100) trained by us and by PyTorch from the same initial
weights on the same minibatches, at the same thread count, timed wall clock.

    python benchmarks/bench_mnist1d.py [--steps 6000] [--threads 1]
"""
import argparse
import time

import numpy as np

import minitorch_conv as mc
import minitorch_conv.functional as F
from minitorch_conv import datasets, models


def torch_cnn(torch, ours):
    """The same network in torch, with our initial weights (the state dict names are torch's)."""
    nn = torch.nn
    net = nn.Sequential(nn.Conv1d(1, 25, 5, stride=2, padding=1), nn.ReLU(),
                        nn.Conv1d(25, 25, 3, stride=2, padding=1), nn.ReLU(),
                        nn.Conv1d(25, 25, 3, stride=2, padding=1), nn.ReLU(),
                        nn.Flatten(), nn.Linear(125, 10))
    net.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in ours.state_dict().items()})
    return net


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=6000)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    import torch
    mc.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    x_train, y_train, x_test, y_test = datasets.mnist1d()
    x_train, x_test = x_train.reshape(-1, 1, 40), x_test.reshape(-1, 1, 40)
    batches = np.random.default_rng(0).integers(0, len(x_train), (args.steps, 100))
    mc.manual_seed(0)
    ours = models.cnn1d()
    theirs = torch_cnn(torch, ours)

    def train_ours():
        opt = mc.optim.Adam(ours.parameters(), lr=1e-2)
        for batch in batches:
            loss = F.cross_entropy(ours(mc.tensor(x_train[batch])), y_train[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()

    def train_theirs():
        opt = torch.optim.Adam(theirs.parameters(), lr=1e-2)
        xt, yt = torch.tensor(x_train), torch.tensor(y_train)
        for batch in torch.from_numpy(batches):
            loss = torch.nn.functional.cross_entropy(theirs(xt[batch]), yt[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()

    results = {}
    for name, fn in (("minitorch_conv", train_ours), ("torch", train_theirs)):
        start = time.perf_counter()
        fn()
        results[name] = time.perf_counter() - start
    with mc.no_grad():
        acc_ours = float((ours(mc.tensor(x_test)).numpy().argmax(1) == y_test).mean())
    with torch.no_grad():
        acc_theirs = float((theirs(torch.tensor(x_test)).numpy().argmax(1) == y_test).mean())
    print(f"MNIST-1D CNN, {args.steps} Adam steps of batch 100, {args.threads} thread(s)")
    print(f"minitorch_conv {results['minitorch_conv']:7.1f} s   test accuracy {100 * acc_ours:.1f}%")
    print(f"torch          {results['torch']:7.1f} s   test accuracy {100 * acc_theirs:.1f}%")
    print(f"torch time / ours: {results['torch'] / results['minitorch_conv']:.2f}")


if __name__ == "__main__":
    main()
