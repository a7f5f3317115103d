"""The command line every study shares: ``--preset``, ``--out``, the data set and the devices,
and :func:`run_main`, which turns a user's mistake into one line and an exit code."""
from __future__ import annotations

import argparse
import errno
import sys
import textwrap
from pathlib import Path
from typing import Any, Callable, Iterable

from experiments.datasets import DATASETS, DEFAULT, load_dataset
from jaxmtl import registry
from jaxmtl.data.checks import DataError


class UsageError(ValueError):
    """A command line that a study cannot run (a model or task the data set lacks, a batch
    that does not split over the devices): reported by :func:`run_main` without a traceback."""


def run_main(main: Callable[[], int | None]) -> int:
    """A study's ``main()`` as a command, its exit status returned (``sys.exit(run_main(main))``).

    What the user can fix prints ``error: <message>`` on stderr, without a
    traceback: missing data (``FileNotFoundError``), a data file that fails its
    checks (:class:`~jaxmtl.data.checks.DataError`) and a :class:`UsageError`
    exit 2 (as argparse's errors: a bad flag, an unknown method); a write that
    fails (a full disk: ``ENOSPC``, naming the file) exits 1. Ctrl-C exits 130
    after the message of :func:`experiments.runs.run_grid` (how many runs are done,
    that a rerun resumes). Any other exception is a bug and keeps its traceback.
    """
    try:
        status = main()
        return status if isinstance(status, int) else 0
    except KeyboardInterrupt as err:
        print(str(err) or "interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    except (DataError, UsageError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        if err.errno == errno.ENOSPC:
            print(f"error: no space left on the device writing {err.filename}", file=sys.stderr)
        else:
            print(f"error: {err}", file=sys.stderr)
        return 1

TIMES = ("times: CPU = a 2-core CPU shared with other jobs, measured where docs/results publishes the run, "
         "otherwise estimated from the measured step rates; GPU = one GPU, estimated (not measured)")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """``--help`` with the description and epilog as written and every option's default; an
    option whose default is ``None`` takes its preset's value (listed under "presets")."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False:
            return action.help or ""
        return super()._get_help_string(action)


def preset_epilog(presets: dict, notes: dict[str, str]) -> str:
    """The "presets" section of ``--help``: per preset, what it runs and how long (``notes``)
    and its settings, which are the defaults of the options left out."""
    lines = [textwrap.fill("presets (an option left out takes the preset's setting; " + TIMES + "):", 100)]
    for name in presets:
        lines.append(textwrap.fill(notes[name], 100, initial_indent=f"  {name}: ", subsequent_indent="      "))
        settings = ", ".join(f"{k}={v}" for k, v in presets[name].items())
        lines.append(textwrap.fill(settings, 100, initial_indent="      settings: ", subsequent_indent="      ",
                                   break_on_hyphens=False))
    return "\n".join(lines)


def method_names(choices: Iterable[str]) -> Callable[[str], str]:
    """An argparse ``type`` for a study's method names: one of ``choices`` in any case, or any
    name :func:`jaxmtl.registry.resolve` knows (labels, LibMTL's and TorchJD's names:
    ``UW``, ``Nash_MTL``, ``IMTLG``, ...) of a registry method among ``choices``."""
    allowed = list(choices)

    def method(name: str) -> str:
        for choice in allowed:
            if choice.lower() == name.lower():
                return choice
        try:
            resolved = registry.resolve(name)
        except ValueError:
            resolved = None
        if resolved in allowed:
            return resolved
        what = f"{name!r} is {resolved!r}, which this study does not run" if resolved else \
            f"{name!r} is not a method name"
        raise argparse.ArgumentTypeError(f"{what}; choose from {', '.join(allowed)} (or their labels and "
                                         "LibMTL/TorchJD names, e.g. UW, Nash_MTL)")

    return method


def at_least(low: float, kind: type = int, *, strict: bool = False) -> Callable[[str], Any]:
    """An argparse ``type``: a ``kind`` number no smaller than ``low`` (greater with
    ``strict``: ``--lr 0``) (``--epochs 0`` or ``--seeds -1`` is a parser error, not a
    traceback from deep inside training)."""

    def number(text: str):
        value = kind(text)   # a ValueError: argparse's "invalid int value"
        if not (value > low if strict else value >= low):   # NaN too
            raise argparse.ArgumentTypeError(f"must be {'greater than' if strict else 'at least'} {low}, got {text}")
        return value

    number.__name__ = kind.__name__
    return number


class _DatasetAction(argparse.Action):
    """``--dataset``: a parser error naming why when the study does not run on that data set."""

    def __init__(self, *args, allowed: tuple[str, ...] = (), why: str = "", study: str = "", **kwargs):
        super().__init__(*args, **kwargs)
        self.allowed, self.why, self.study = allowed, why, study

    def __call__(self, parser, namespace, value, option_string=None):
        if value not in self.allowed:
            runs_on = f"runs on {', '.join(self.allowed)} only" if self.allowed else "takes no --dataset"
            parser.error(f"--dataset {value}: the {self.study} study {runs_on}"
                         f"{': ' + self.why if self.why else ''}")
        setattr(namespace, self.dest, value)


class _TasksAction(argparse.Action):
    """``--tasks``: a parser error for a single task where the study compares tasks (``pairs``: why)."""

    def __init__(self, *args, pairs: str = "", **kwargs):
        super().__init__(*args, **kwargs)
        self.pairs = pairs

    def __call__(self, parser, namespace, values, option_string=None):
        if self.pairs and len(values) < 2:
            parser.error(f"--tasks {values[0]}: {self.pairs}; give two tasks or more")
        setattr(namespace, self.dest, values)


def study_parser(doc: str, name: str, presets: dict, notes: dict[str, str], *, data: bool = True,
                 datasets: tuple[str, ...] | None = None, why: str = "",
                 default: str | None = None, pairs: str = "") -> argparse.ArgumentParser:
    """The arguments every study shares, with ``--help`` saying what each preset runs and
    how long it takes (``notes``: one line per preset) and every default
    (:class:`HelpFormatter`): ``--preset``, ``--out`` and, for studies that
    train, ``--dataset`` (any of :data:`experiments.datasets.DATASETS`, ``default``
    :data:`~experiments.datasets.DEFAULT`; a study that runs on ``datasets`` only
    rejects the others with a parser error saying ``why``), ``--data-dir``,
    ``--devices`` and, where a study takes other data sets than the default, ``--arch``,
    ``--tiny-model`` and ``--tasks`` (two or more where the study compares tasks: ``pairs``
    says why)."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0], formatter_class=HelpFormatter,
                                     epilog=preset_epilog(presets, notes))
    parser.add_argument("--preset", choices=list(presets), default="quick",
                        help="the size of the study (see presets below)")
    parser.add_argument("--out", default=None, help=f"output directory (default results/{name}/<preset>)")
    if data:
        allowed = tuple(datasets or sorted(DATASETS))
        parser.add_argument("--dataset", choices=sorted(DATASETS), default=default or DEFAULT,
                            action=_DatasetAction, allowed=allowed, why=why, study=name,
                            help=f"the data set (docs/datasets.md); this study: {', '.join(allowed)}")
        parser.add_argument("--data-dir", default=None,
                            help="the data set's directory (Multi-Fashion: the Fashion-MNIST IDX files; "
                                 "Multi-MNIST: the MNIST IDX files; see docs/datasets.md)")
        if allowed != (DEFAULT,):
            parser.add_argument("--arch", default=None,
                                help="the data set's model where it has several (Cityscapes, NYUv2: segnet, "
                                     "deeplab_resnet18, deeplab_resnet50); default: its first")
            parser.add_argument("--tiny-model", action="store_true",
                                help="the few-channel version of the model (smoke runs, tests)")
            parser.add_argument("--tasks", nargs="+", default=None, action=_TasksAction, pairs=pairs,
                                help="the tasks to train, where a data set offers more than its own set "
                                     "(Cityscapes: segmentation depth instance; see docs/datasets.md)")
        parser.add_argument("--devices", type=at_least(1), default=None,
                            help="train data-parallel on the first N local devices (default: all of "
                                 "them; the batch size must be a multiple of N)")
    elif why:  # a study without data: say so to a --dataset
        parser.add_argument("--dataset", choices=sorted(DATASETS), default=None, action=_DatasetAction,
                            allowed=(), why=why, study=name, help="(not taken: " + why + ")")
    return parser


def study_data(args: argparse.Namespace, settings: dict, seed: int = 0) -> tuple[Any, dict]:
    """The data set of a study's ``--dataset``/``--data-dir`` loaded with ``settings`` (the
    preset's ``data``; ``--tasks`` is added to them where the data set's loader reads
    them), and the :class:`~experiments.runs.RunSpec` fields naming it (``dataset``,
    ``arch``, ``tiny``, ``tasks``). Raises :class:`UsageError` for an ``--arch`` the data set
    lacks or ``--tasks`` it does not offer."""
    name = getattr(args, "dataset", DEFAULT)
    bench = DATASETS[name]
    arch, tiny = getattr(args, "arch", None), getattr(args, "tiny_model", False)
    if arch is not None and arch not in bench.archs:
        raise UsageError(f"--arch {arch}: {name} has the models {', '.join(bench.archs)}")
    tasks = getattr(args, "tasks", None)
    fields = {"dataset": name, "arch": None if arch == bench.archs[0] else arch, "tiny": tiny}
    if tasks:
        unknown = sorted(set(tasks) - set(bench.task_names))
        if not bench.task_names:
            raise UsageError(f"--tasks: {name} has a fixed task set")
        if unknown:
            raise UsageError(f"--tasks {' '.join(unknown)}: {name}'s tasks are {', '.join(bench.task_names)}")
        if bench.tasks_in_loader:
            settings["tasks"] = list(tasks)   # in the preset's data settings, so in every run's key
        else:
            fields["tasks"] = tuple(tasks)
    data = load_dataset(name, args.data_dir, **{"seed": seed, **settings})
    return data, fields


def with_overrides(preset: dict, args: argparse.Namespace, names: tuple[str, ...]) -> dict:
    """A copy of ``preset`` with the command-line values of ``names`` that were given."""
    cfg = dict(preset)
    cfg.update({n: getattr(args, n) for n in names if getattr(args, n) is not None})
    return cfg


def out_dir(args: argparse.Namespace, name: str, home: str = DEFAULT) -> Path:
    """The study's output directory: ``--out``, or ``results/<name>/<preset>`` with
    ``-<dataset>`` added for a ``--dataset`` other than the study's ``home`` data set."""
    return Path(args.out or f"results/{name}/{args.preset}" + ("" if args.dataset == home else f"-{args.dataset}"))
