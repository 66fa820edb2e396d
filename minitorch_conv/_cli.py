"""What the subcommands share: optional imports, user errors, progress bars, figures, output paths.

The core library needs numpy and cffi alone. The command line's extras (mnist1d, scikit-learn,
scipy, matplotlib, tqdm) are imported inside the subcommands through require(), so a missing one
costs a one-line message saying what to install, never a traceback.
"""
import argparse
import os
import tempfile


class MissingExtra(Exception):
    """An optional dependency of the command line is not installed."""


class CommandError(Exception):
    """A bad argument or an unusable file: the command line prints the message and exits non-zero."""


def require(module, package=None, extra="examples"):
    """Import an optional dependency or say in one line what to install."""
    try:
        return __import__(module, fromlist=["_"])
    except ImportError:
        name = package or module.split(".")[0]
        raise MissingExtra(f"this command needs the '{name}' package: "
                           f"pip install 'minitorch-conv[{extra}]'") from None


def pyplot():
    """matplotlib.pyplot on the Agg backend: PNG files only, no display needed."""
    require("matplotlib").use("Agg")
    return require("matplotlib.pyplot", "matplotlib")


def progress_bar(total, description, quiet=False):
    """A tqdm bar on stderr; tqdm hides it by itself when stderr is not a terminal."""
    tqdm = require("tqdm").tqdm
    return tqdm(total=total, desc=description, leave=False, dynamic_ncols=True, disable=True if quiet else None)


def positive(kind):
    """An argparse type: an int or float greater than zero."""
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an int' if kind is int else 'a number'}, got {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value
    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


def non_negative_int(text):
    """An argparse type for seeds."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an int, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be non-negative, got {text}")
    return value


def check_writable(path, what):
    """Fail now, before minutes of work, if `path` cannot be written; CommandError says why."""
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise CommandError(f"cannot write the {what} {path}: it is a directory")
    if not os.path.isdir(directory):
        raise CommandError(f"cannot write the {what} {path}: no directory {directory}")
    try:
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as error:
        raise CommandError(f"cannot write the {what} {path}: {error.strerror or error}") from None


def save_figure(figure, path, what="plot"):
    """Write a PNG; a failure is a CommandError naming the path."""
    try:
        figure.savefig(path, dpi=110)
    except OSError as error:
        raise CommandError(f"cannot write the {what} {path}: {error.strerror or error}") from None
    finally:
        pyplot().close(figure)
