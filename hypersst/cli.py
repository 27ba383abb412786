"""The ``hypersst`` console command, with one subcommand per experiment family.

Subcommands:

* ``hypersst hgnn``: HyboNet node classification / link prediction with full-rank, LoRA,
  ReLoRA* or SST linear layers, over seeds ``F .. F+N-1`` (``--first-seed``, ``--seeds``);
  prints mean ± std per method and the gap closed, and writes ``results.json``,
  ``results.csv`` and ``val_curves.png``, plus one file per finished run in ``runs/``, which
  ``--resume`` reads back.
* ``hypersst curvature``: the same runs over a list of curvatures, on the Lorentz model
  (values of ``k > 0``, sectional curvature ``-1/k``) or the Poincaré model (values of
  ``kappa <= 0``, where 0 is Euclidean); also writes ``curvature.png``.

Errors: invalid flags or flag combinations, an unwritable ``--out`` folder and a missing data
folder are found before any training. Each error prints one ``hypersst <command>: error:``
line (after the usage for a flag error) and exits with code 2. A run that fails later prints
one such line and exits with code 1.

Epochs count from 0 everywhere: ``best_epoch`` in ``results.csv`` / ``results.json`` and the
x axis of ``val_curves.png`` (epoch 0 is the evaluation after the first optimizer step).

A new family adds a ``_add_<name>_parser`` function that registers its subparser and sets
``handler`` to a function ``(args) -> int`` and ``subparser`` to its parser.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import signal
import sys
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path

__all__ = ["build_parser", "main"]

logger = logging.getLogger("hypersst.cli")

_DATASETS = ("airport", "cora", "disease", "pubmed", "synthetic")
_TASKS = ("nc", "lp")
_METHODS = ("full", "lora", "relora", "sst")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive finite number, got {text}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {value}")
    return value


def _add_run_arguments(parser: argparse.ArgumentParser, *, default_out: str) -> None:
    """Add the options shared by ``hgnn`` and ``curvature``."""
    parser.add_argument("--dataset", nargs="+", choices=_DATASETS, default=["synthetic"], help="dataset(s) to run (default: synthetic)")
    parser.add_argument("--task", nargs="+", choices=_TASKS, default=["nc"], help="nc = node classification, lp = link prediction (default: nc)")
    parser.add_argument(
        "--rank", nargs="+", type=_positive_int, default=[4], help="rank(s) of LoRA, ReLoRA* and SST; full ignores it (default: 4)"
    )
    parser.add_argument(
        "--seeds", type=_positive_int, default=3, help="number of seeds; runs seeds F .. F+N-1, F being --first-seed (default: 3)"
    )
    parser.add_argument(
        "--first-seed",
        type=_non_negative_int,
        default=0,
        help="first seed, to add seeds to an earlier study without rerunning it (default: 0)",
    )
    parser.add_argument(
        "--epochs", type=_positive_int, default=None, help="maximum epochs, overriding the per-dataset default (5000 for real data, 300 for synthetic)"
    )
    parser.add_argument(
        "--patience",
        type=_positive_int,
        default=None,
        help="epochs without a validation improvement that stop a run, for every method (default: per data set, 500 for "
        "real data, 100 for synthetic)",
    )
    parser.add_argument(
        "--protocol",
        choices=("clean", "hgcn"),
        default="clean",
        help="data splits: clean (disjoint splits, no self-pair or positive negatives) or hgcn (HGCN/HyboNet splits) (default: clean)",
    )
    parser.add_argument(
        "--features",
        choices=("auto", "identity"),
        default="auto",
        help="auto reads the real features; identity uses one-hot node ids (not comparable with published numbers) (default: auto)",
    )
    parser.add_argument(
        "--data-root", default=None, help="folder with one sub-folder per real dataset (default: $HYPERSST_DATA)"
    )
    parser.add_argument("--split-seed", type=_non_negative_int, default=1234, help="seed of the data split (default: 1234)")
    parser.add_argument("--out", default=default_out, help=f"output folder (default: {default_out})")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="reuse the runs already saved in OUT/runs by an earlier command with the same settings, and train "
        "only the others; without it every run is trained again",
    )
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32", help="floating dtype of the model (default: float32)")
    parser.add_argument(
        "--sst-steps", type=_positive_int, default=None, help="optimizer steps per SST / ReLoRA* iteration (default: 20)"
    )
    parser.add_argument(
        "--sst-warmup", type=_non_negative_int, default=None, help="learning-rate warm-up steps per iteration (default: 10 for SST, 2 for ReLoRA*)"
    )
    parser.add_argument(
        "--sst-vector-lr-scale",
        type=_positive_float,
        default=None,
        help="learning rate of SST's active singular vectors relative to the per-dataset one (default: 1)",
    )
    parser.add_argument(
        "--sst-value-lr-scale",
        type=_positive_float,
        default=None,
        help="learning rate of SST's singular values relative to the per-dataset one (default: 1)",
    )
    parser.add_argument(
        "--sst-vector-lr-rule",
        choices=("uniform", "width"),
        default=None,
        help="'uniform': every SST vector at that rate; 'width': a vector of length n at that rate times "
        "sqrt(hidden width / n) (default: width)",
    )
    parser.add_argument(
        "--sst-state-reset",
        choices=("moments", "restart"),
        default=None,
        help="optimizer state of newly trained SST vectors and ReLoRA* factors: 'moments' zeroes the moments "
        "and keeps the step counters; 'restart' also resets the counters, so Adam restarts exactly "
        "(default: restart)",
    )
    parser.add_argument(
        "--sst-iterations-per-round",
        type=_positive_int,
        default=None,
        help="SST iterations between two re-SVDs of a layer (default: ceil(k / r), k = min(in, out) of the layer)",
    )
    parser.add_argument(
        "--sst-gradient",
        choices=("enhanced", "default"),
        default=None,
        help="gradient of SST's active singular vectors: 'enhanced' (G v_i and G^T u_i, not scaled by s_i) or "
        "'default' (the true gradient, s_i times those); ReLoRA* ignores it (default: enhanced)",
    )
    parser.add_argument(
        "--sst-sampling",
        choices=("mixed", "proportional", "uniform", "sequential", "top"),
        default=None,
        help="how SST chooses its active triplets: 'mixed' draws with probability (1/k + s_i / sum(s)) / 2, "
        "'proportional' with s_i / sum(s), 'uniform' with 1/k; 'sequential' trains them in turn from the "
        "largest singular value down, each once per round; 'top' always the r largest. ReLoRA* ignores it "
        "(default: mixed)",
    )
    parser.add_argument(
        "--sst-warmup-scope",
        choices=("all", "reset"),
        default=None,
        help="parameter groups that the per-iteration warm-up of SST and ReLoRA* scales: 'all', or 'reset' "
        "for those whose optimizer state restarts (SST's singular vectors, and its singular values after "
        "a re-SVD; ReLoRA*'s LoRA factors) (default: all)",
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="hide the progress bars (hidden anyway when stderr is not a terminal)"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings only")


def _add_hgnn_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "hgnn",
        help="HyboNet node classification / link prediction with full, LoRA, ReLoRA* or SST layers",
        description="Train HyboNet with each method and seed, print mean ± std and the gap closed, and write results.",
    )
    parser.add_argument("--method", nargs="+", choices=_METHODS, default=None, help="method(s) to run (default: sst)")
    parser.add_argument("--grid", action="store_true", help="run every method (full, lora, relora, sst) at every given rank")
    parser.add_argument(
        "--curvature", type=float, default=1.0, help="Lorentz parameter k > 0; points satisfy <x,x>_L = -k, curvature -1/k (default: 1)"
    )
    _add_run_arguments(parser, default_out="runs/hgnn")
    parser.set_defaults(handler=_run_hgnn_command, subparser=parser)


def _add_curvature_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "curvature",
        help="sweep the curvature of the Lorentz or Poincaré model",
        description="Train at each curvature and seed, print mean ± std, and plot the test metric against curvature.",
    )
    parser.add_argument("--method", nargs="+", choices=_METHODS, default=["sst"], help="method(s) to run (default: sst)")
    parser.add_argument(
        "--manifold",
        choices=("lorentz", "poincare"),
        default="lorentz",
        help="lorentz: HyboNet; poincare: Poincaré-ball layers with tangent-space aggregation (default: lorentz)",
    )
    parser.add_argument(
        "--curvatures",
        nargs="+",
        type=float,
        default=None,
        help="Lorentz k > 0 values, or Poincaré kappa <= 0 values where 0 is Euclidean (default: 0.5 1 2, or -1 -0.5 0)",
    )
    _add_run_arguments(parser, default_out="runs/curvature")
    parser.set_defaults(handler=_run_curvature_command, subparser=parser)


def build_parser() -> argparse.ArgumentParser:
    """Build the ``hypersst`` argument parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="hypersst", description="Sparse Spectral Training experiments on hyperbolic and Euclidean networks.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    _add_hgnn_parser(subparsers)
    _add_curvature_parser(subparsers)
    return parser


def _configure_logging(quiet: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    package_logger = logging.getLogger("hypersst")
    package_logger.handlers[:] = [handler]
    package_logger.setLevel(logging.WARNING if quiet else logging.INFO)
    package_logger.propagate = False


def _seed_range(args) -> range:
    """Return the seeds that ``--first-seed`` and ``--seeds`` select."""
    return range(args.first_seed, args.first_seed + args.seeds)


def _run_specs(args, methods, curvatures) -> list[dict]:
    """List one dict of run arguments per (dataset, task, curvature, method, rank, seed)."""
    specs = []
    for dataset in args.dataset:
        for task in args.task:
            for curvature in curvatures:
                for method in methods:
                    ranks = [None] if method == "full" else args.rank
                    for rank in ranks:
                        for seed in _seed_range(args):
                            specs.append(dict(dataset=dataset, task=task, curvature=curvature, method=method, rank=rank, seed=seed))
    return specs


RUNS_FOLDER = "runs"
"""Sub-folder of ``--out`` that contains one file per finished run, read back by ``--resume``."""

# Settings of the command's config that change what a run computes. Output and display options are not among them.
_RUN_SETTINGS = ("protocol", "features", "split_seed", "epochs", "patience", "dtype")

# The settings that only some methods read: ReLoRA* ignores SST's sampling, gradient, rounds and learning-rate
# scales, and full rank and LoRA ignore them all, so a saved run of those methods stays valid when they change.
_RELORA_SETTINGS = ("sst_steps", "sst_warmup", "sst_state_reset", "sst_warmup_scope")
_METHOD_SETTINGS = {
    "full": (),
    "lora": (),
    "relora": _RELORA_SETTINGS,
    "sst": _RELORA_SETTINGS
    + ("sst_vector_lr_scale", "sst_value_lr_scale", "sst_vector_lr_rule", "sst_iterations_per_round", "sst_gradient", "sst_sampling"),
}

# Keys of the run settings that are not named after their flag.
_SETTING_LABELS = {"graph": "data (nodes, edges, features)", "hypersst_version": "hypersst version"}

# Files that every command writes in --out, besides the run folder.
_RESULT_FILES = ("results.json", "results.csv", "val_curves.png", "curvature.png")


def _run_file_name(spec: dict, manifold: str) -> str:
    """Return the file name of one run. ``repr`` gives distinct curvatures distinct names."""
    rank = "" if spec["rank"] is None else f"-r{spec['rank']}"
    return f"{spec['dataset']}-{spec['task']}-{manifold}-k{float(spec['curvature'])!r}-{spec['method']}{rank}-seed{spec['seed']}.json"


def _run_config(spec: dict, config: dict, manifold: str, graph) -> dict:
    """Collect what determines one run, in the form it takes after a JSON round trip."""
    from hypersst import __version__

    settings = _RUN_SETTINGS + _METHOD_SETTINGS[spec["method"]]
    run_config = {**spec, "manifold": manifold, **{key: config[key] for key in settings}}
    if isinstance(run_config.get("sst_warmup"), dict):
        # Without --sst-warmup each method has its own default warm-up.
        run_config["sst_warmup"] = run_config["sst_warmup"][spec["method"]]
    _resolve_stopping(run_config, spec["dataset"], spec["task"])
    run_config["graph"] = {
        "nodes": int(graph.num_nodes),
        "edges": int(graph.edge_index.size(1)),
        "features": int(graph.num_features),
    }
    # NOTE: the version string changes only with releases, so --resume also reuses runs that an older
    # checkout of the same version saved.
    run_config["hypersst_version"] = __version__
    return json.loads(json.dumps(run_config))


def _resolve_stopping(settings: dict, dataset: str, task: str) -> None:
    """Replace a default ``epochs`` or ``patience`` (None) in ``settings`` by its per-dataset value.

    A run trained with ``--patience 500`` then matches one trained without the flag where 500 is the
    per-dataset default, and run files that saved None still match.
    """
    from hypersst.tasks.hgnn import get_hyperparameters

    defaults = get_hyperparameters(dataset, task)
    if settings.get("epochs") is None:
        settings["epochs"] = defaults.max_epochs
    if settings.get("patience") is None:
        settings["patience"] = defaults.patience


def _setting_label(key: str) -> str:
    """Name a run setting by its flag where it has one of its own."""
    if key in _SETTING_LABELS:
        return _SETTING_LABELS[key]
    if key in _RUN_SETTINGS or key.startswith("sst_"):
        return "--" + key.replace("_", "-")
    return key


def _setting_value(value) -> str:
    return "default" if value is None else repr(value)


def _saved_record(path: Path, run_config: dict) -> tuple[dict | None, str | None]:
    """Read the run saved at ``path``.

    Returns:
        ``(record, None)`` if the run was trained with ``run_config``, else ``(None, differences)``,
        the differing settings in words.

    Raises:
        _UsageError: if the file cannot be read or is not a complete run file for this run.
    """
    from hypersst.tasks.reporting import load_run

    try:
        saved_config, record = load_run(path)
    except ValueError as error:
        raise _UsageError(f"--resume: {error}", show_usage=False) from None
    except OSError as error:
        reason = error.strerror or str(error)
        raise _UsageError(
            f"--resume: cannot read {path} ({reason}); delete it to train that run again", show_usage=False
        ) from None
    identity = ("dataset", "task", "manifold", "curvature", "method", "rank", "seed")
    if any(record.get(key) != run_config[key] for key in identity):
        raise _UsageError(
            f"--resume: {path} contains the record of another run than its name gives (the dataset, task, manifold, "
            "curvature, method, rank or seed differs); delete it to train that run again",
            show_usage=False,
        )
    _resolve_stopping(saved_config, run_config["dataset"], run_config["task"])
    if saved_config == run_config:
        return record, None
    keys = sorted(set(saved_config) | set(run_config))
    differences = [
        f"{_setting_label(key)} {_setting_value(saved_config.get(key))} there, {_setting_value(run_config.get(key))} now"
        for key in keys
        if saved_config.get(key) != run_config.get(key)
    ]
    return None, "; ".join(differences)


class _Terminated(Exception):
    """SIGTERM arrived while runs were training."""


@contextmanager
def _sigterm_as_exception():
    """Turn SIGTERM into :class:`_Terminated` inside the block, as batch schedulers send it before a kill.

    Python can only install signal handlers in the main thread, so elsewhere SIGTERM keeps its handler.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum, frame):
        raise _Terminated

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _scan_saved_runs(specs, config, graphs, runs_dir: Path, *, manifold: str, resume: bool):
    """Match each spec with its file in ``runs_dir``.

    Returns:
        ``(records, pending)``: one entry per spec in ``records``, the saved record with ``resume`` or None,
        and one ``(index, spec, run_config, path)`` tuple in ``pending`` per run still to train.

    Raises:
        _UsageError: if a run's file path is taken by a folder, or (with ``resume``) a saved run cannot be
            read or was trained with different settings.
    """
    records: list[dict | None] = [None] * len(specs)
    pending = []
    mismatched = []
    for index, spec in enumerate(specs):
        run_config = _run_config(spec, config, manifold, graphs[(spec["dataset"], spec["task"])])
        path = runs_dir / _run_file_name(spec, manifold)
        if resume and path.exists():
            records[index], differences = _saved_record(path, run_config)
            if differences:
                mismatched.append((path, differences))
        else:
            pending.append((index, spec, run_config, path))
    blocked = [path for *_, path in pending if path.exists() and not path.is_file()]
    if blocked:
        raise _UsageError(
            f"--out {runs_dir.parent}: {len(blocked)} run file path(s) are taken by something that is not a file, "
            f"e.g. {blocked[0]}; delete them or choose another --out",
            show_usage=False,
        )
    if mismatched:
        first_path, first_differences = mismatched[0]
        raise _UsageError(
            f"--resume: {len(mismatched)} saved run(s) in {runs_dir} were trained with different settings, "
            f"e.g. {first_path.name} ({first_differences}); delete those files to train them again, drop "
            "--resume to train every run again, or choose another --out",
            show_usage=False,
        )
    if resume:
        print(f"resumed {len(specs) - len(pending)} of {len(specs)} runs from {runs_dir}")
    else:
        saved = sum(path.exists() for *_, path in pending)
        if saved:
            print(f"note: {runs_dir} contains {saved} of these runs from an earlier command; they are trained again (--resume reuses them)")
    return records, pending


def _train_run(spec: dict, args, config: dict, graphs: dict, *, manifold: str, dtype) -> dict:
    """Train the run that ``spec`` names with the command's settings and return its record."""
    from hypersst.tasks import hgnn

    logger.info(
        "run %s %s method=%s rank=%s curvature=%s seed=%d",
        spec["dataset"], spec["task"], spec["method"], spec["rank"], spec["curvature"], spec["seed"],
    )
    record = hgnn.run_hgnn(
        spec["dataset"],
        spec["task"],
        spec["method"],
        spec["rank"],
        spec["seed"],
        data=graphs[(spec["dataset"], spec["task"])],
        protocol=args.protocol,
        features=args.features,
        split_seed=args.split_seed,
        manifold=manifold,
        curvature=spec["curvature"],
        epochs=args.epochs,
        patience=args.patience,
        sst_steps_per_iteration=config["sst_steps"],
        sst_warmup_steps=args.sst_warmup,
        sst_vector_lr_scale=config["sst_vector_lr_scale"],
        sst_vector_lr_rule=config["sst_vector_lr_rule"],
        sst_state_reset=config["sst_state_reset"],
        sst_iterations_per_round=config["sst_iterations_per_round"],
        sst_gradient=config["sst_gradient"],
        sst_sampling=config["sst_sampling"],
        sst_value_lr_scale=config["sst_value_lr_scale"],
        sst_warmup_scope=config["sst_warmup_scope"],
        dtype=dtype,
        progress=not args.no_progress,
    )
    logger.info(
        "done seed=%d best_epoch=%d test=%s (%.1f s)", record["seed"], record["best_epoch"], record["test"], record["seconds"]
    )
    return record


def _execute(args, *, methods, manifold, curvatures, command: str) -> int:
    """Run every spec, then print and write the results."""
    import torch
    from tqdm.auto import tqdm

    from hypersst.tasks import hgnn
    from hypersst.tasks.reporting import (
        compute_gaps,
        format_table,
        plot_curvature,
        plot_validation_curves,
        save_run,
        summarize,
        write_results,
    )

    config = {key: value for key, value in vars(args).items() if key not in ("handler", "subparser")}
    config.update(command=command, methods=list(methods), manifold=manifold, curvatures=list(curvatures))
    config["seed_list"] = list(_seed_range(args))
    config["sst_steps"] = args.sst_steps or hgnn.SST_STEPS_PER_ITERATION
    if args.sst_warmup is not None:
        config["sst_warmup"] = args.sst_warmup
    else:
        config["sst_warmup"] = dict(hgnn.WARMUP_STEPS)
    if args.sst_vector_lr_scale is not None:
        config["sst_vector_lr_scale"] = args.sst_vector_lr_scale
    else:
        config["sst_vector_lr_scale"] = hgnn.SST_VECTOR_LR_SCALE
    if args.sst_value_lr_scale is not None:
        config["sst_value_lr_scale"] = args.sst_value_lr_scale
    else:
        config["sst_value_lr_scale"] = hgnn.SST_VALUE_LR_SCALE
    config["sst_vector_lr_rule"] = args.sst_vector_lr_rule or hgnn.SST_VECTOR_LR_RULE
    config["sst_state_reset"] = args.sst_state_reset or hgnn.SST_STATE_RESET
    config["sst_iterations_per_round"] = args.sst_iterations_per_round or hgnn.SST_ITERATIONS_PER_ROUND
    config["sst_gradient"] = args.sst_gradient or hgnn.SST_GRADIENT
    config["sst_sampling"] = args.sst_sampling or hgnn.SST_SAMPLING
    config["sst_warmup_scope"] = args.sst_warmup_scope or hgnn.SST_WARMUP_SCOPE
    logger.info("config: %s", json.dumps(config, sort_keys=True))
    out = _prepare_out(Path(args.out))

    graphs = {}
    for dataset in args.dataset:
        for task in args.task:
            graph = hgnn.load_graph(
                dataset, task, protocol=args.protocol, features=args.features, data_root=args.data_root, split_seed=args.split_seed
            )
            graphs[(dataset, task)] = graph
            meta = getattr(graph, "meta", None) or {}
            if meta.get("note"):
                print(f"note: {dataset} {task}: {meta['note']}")
    sequential_round = None
    if "sst" in methods and config["sst_sampling"] == "sequential":
        sequential_round = config["sst_iterations_per_round"]
    _check_ranks(
        args.rank, graphs, methods=methods, manifold=manifold, curvature=curvatures[0], sequential_round=sequential_round
    )

    specs = _run_specs(args, methods, curvatures)
    runs_dir = out / RUNS_FOLDER
    records, pending = _scan_saved_runs(specs, config, graphs, runs_dir, manifold=manifold, resume=args.resume)

    dtype = torch.float64 if args.dtype == "float64" else torch.float32
    # disable=None lets tqdm hide the bar when stderr is not a terminal (a pipe or a log file).
    progress_off = True if args.no_progress else None
    try:
        with _sigterm_as_exception():
            for index, spec, run_config, path in tqdm(pending, desc=command, disable=progress_off, file=sys.stderr, dynamic_ncols=True):
                record = _train_run(spec, args, config, graphs, manifold=manifold, dtype=dtype)
                try:
                    records[index] = save_run(path, run_config, record)
                except OSError as error:
                    finished = sum(entry is not None for entry in records)
                    raise RuntimeError(
                        f"failed to save the run {path.name} in {runs_dir} ({error.strerror or error}); {finished} of "
                        f"{len(specs)} runs are saved there, and --resume reuses them once the folder is writable"
                    ) from None
    except (KeyboardInterrupt, _Terminated) as stop:
        finished = sum(entry is not None for entry in records)
        cause = "terminated (SIGTERM)" if isinstance(stop, _Terminated) else "interrupted"
        print(
            f"hypersst {command}: {cause} with {finished} of {len(specs)} runs finished and saved in {runs_dir}; "
            "rerun the same command with --resume to train only the others",
            file=sys.stderr,
        )
        return 143 if isinstance(stop, _Terminated) else 130

    summary = summarize(records)
    gaps = compute_gaps(summary)
    print(format_table(summary, gaps))
    paths = write_results(out, records, summary, gaps, config)
    paths["val_curves"] = plot_validation_curves(records, out / "val_curves.png", with_curvature=len(curvatures) > 1)
    if command == "curvature":
        paths["curvature"] = plot_curvature(summary, out / "curvature.png")
    for name, path in paths.items():
        print(f"wrote {name}: {path}")
    return 0


def _run_hgnn_command(args) -> int:
    if args.grid and args.method is not None:
        raise _UsageError("--grid runs every method; drop --method or drop --grid")
    if not args.curvature > 0:
        raise _UsageError(f"--curvature is the Lorentz parameter k and must be positive, got {args.curvature}")
    methods = list(_METHODS) if args.grid else (args.method or ["sst"])
    _check_run_arguments(args, methods)
    return _execute(args, methods=methods, manifold="lorentz", curvatures=[args.curvature], command="hgnn")


def _run_curvature_command(args) -> int:
    curvatures = args.curvatures
    if curvatures is None:
        curvatures = [0.5, 1.0, 2.0] if args.manifold == "lorentz" else [-1.0, -0.5, 0.0]
    # Adding 0.0 turns -0.0 into 0.0, so that both spellings name the same Euclidean run.
    curvatures = [value + 0.0 for value in curvatures]
    _reject_repeats("--curvatures", curvatures)
    if args.manifold == "lorentz" and any(not value > 0 for value in curvatures):
        raise _UsageError(f"Lorentz curvatures are values of k and must all be positive, got {curvatures}")
    if args.manifold == "poincare" and any(not value <= 0 for value in curvatures):
        raise _UsageError(f"Poincaré curvatures are values of kappa and must all be <= 0 (0 is Euclidean), got {curvatures}")
    _check_run_arguments(args, args.method)
    return _execute(args, methods=args.method, manifold=args.manifold, curvatures=curvatures, command="curvature")


class _UsageError(Exception):
    """An invalid argument value or combination found after parsing (exit code 2).

    Args:
        message: the error, phrased in terms of the command's flags.
        show_usage: print the subcommand's usage line before the error.
    """

    def __init__(self, message: str, *, show_usage: bool = True) -> None:
        super().__init__(message)
        self.show_usage = show_usage


# torch.manual_seed and torch.Generator.manual_seed take a signed 64-bit integer.
_MAX_SEED = 2**63 - 1


def _reject_repeats(flag: str, values) -> None:
    """Raise a usage error if ``values`` lists a value twice, which would train the same runs twice."""
    seen = []
    for value in values:
        if value in seen:
            raise _UsageError(f"{flag} lists {value} more than once; give each value once")
        seen.append(value)


def _check_run_arguments(args, methods) -> None:
    """Reject, before any data is loaded, the values the library would only reject mid-run."""
    from hypersst.tasks import hgnn

    for flag, values in (("--dataset", args.dataset), ("--task", args.task), ("--method", methods), ("--rank", args.rank)):
        _reject_repeats(flag, values)
    last_seed = args.first_seed + args.seeds - 1
    if last_seed > _MAX_SEED:
        raise _UsageError(
            f"--first-seed {args.first_seed} with --seeds {args.seeds} reaches seed {last_seed}, above the largest "
            f"seed torch accepts ({_MAX_SEED}); choose a smaller --first-seed"
        )
    steps = args.sst_steps or hgnn.SST_STEPS_PER_ITERATION
    if args.sst_warmup is not None:
        warmup, origin = args.sst_warmup, ""
    else:
        labels = {"relora": "ReLoRA*", "sst": "SST"}
        defaults = [(hgnn.WARMUP_STEPS[name], f" (the {labels[name]} default)") for name in methods if name in labels]
        warmup, origin = max(defaults, default=(0, ""))
    if warmup > steps:
        steps_text = f"--sst-steps {steps}" + ("" if args.sst_steps else " (the default)")
        warmup_text = f"--sst-warmup {warmup}{origin}"
        raise _UsageError(
            f"{warmup_text} exceeds {steps_text}: the learning-rate warm-up must fit in one SST / ReLoRA* "
            f"iteration; choose --sst-warmup <= {steps} or raise --sst-steps"
        )

    if "synthetic" in args.dataset and (args.protocol != "clean" or args.features != "auto"):
        raise _UsageError(
            f"--dataset synthetic has only --protocol clean and its own features, got --protocol {args.protocol} "
            f"--features {args.features}; run the synthetic graph separately with the defaults"
        )

    real = [name for name in args.dataset if name != "synthetic"]
    if real:
        if args.data_root is not None:
            root, source = args.data_root, "--data-root"
        else:
            root, source = os.environ.get("HYPERSST_DATA"), "HYPERSST_DATA"
        if not root:
            raise _UsageError(
                f"--dataset {' '.join(real)} reads real data but no data folder is given; pass --data-root PATH "
                "or set HYPERSST_DATA to the folder that holds airport/, cora/, disease_nc/, disease_lp/ and pubmed/",
                show_usage=False,
            )
        if not Path(root).is_dir():
            raise _UsageError(
                f"{source} {root} is not a folder; point it to the folder that holds airport/, cora/, "
                "disease_nc/, disease_lp/ and pubmed/",
                show_usage=False,
            )


def _prepare_out(out: Path) -> Path:
    """Create the output folder and its run folder, and check that files can be written in both."""
    if out.exists() and not out.is_dir():
        raise _UsageError(f"--out {out} is a file, not a folder; choose a folder", show_usage=False)
    for name in _RESULT_FILES:
        if (out / name).is_dir():
            raise _UsageError(
                f"--out {out}: {out / name} is a folder, so the result file cannot be written; delete it or choose another --out",
                show_usage=False,
            )
    for folder in (out, out / RUNS_FOLDER):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=folder, prefix=".hypersst-write-check-"):
                pass
        except OSError as error:
            reason = error.strerror or str(error)
            raise _UsageError(
                f"--out {out}: {folder} is not a writable folder ({reason}); choose another --out", show_usage=False
            ) from None
    return out


def _check_ranks(
    ranks, graphs: dict, *, methods, manifold: str, curvature: float, sequential_round: int | None = None
) -> None:
    """Reject a ``--rank`` larger than the narrowest hyperbolic linear layer of a model.

    LoRA, ReLoRA* and SST replace the linear map inside every LorentzLinear or PoincareLinear,
    and each needs ``rank <= min(in_features, out_features)`` of that map. The widths are read
    from a full-rank model built once per dataset and task. With ``sequential_round``, the
    ``--sst-iterations-per-round`` of sequential sampling, also reject rounds too short to train
    every triplet of the widest layer.
    """
    if all(method == "full" for method in methods):
        return
    from hypersst.manifolds import Lorentz, Stereographic
    from hypersst.nn import LorentzLinear, PoincareLinear
    from hypersst.tasks import hgnn

    geometry = Lorentz(k=curvature) if manifold == "lorentz" else Stereographic(k=curvature)
    for (dataset, task), graph in graphs.items():
        model = hgnn.build_model(task, graph, hgnn.get_hyperparameters(dataset, task), manifold=geometry)
        shapes = [
            (module.linear.in_features, module.linear.out_features)
            for module in model.modules()
            if isinstance(module, (LorentzLinear, PoincareLinear))
        ]
        in_features, out_features = min(shapes, key=min)
        limit = min(in_features, out_features)
        too_large = [rank for rank in ranks if rank > limit]
        if too_large:
            raise _UsageError(
                f"--rank {too_large[0]} is too large for {dataset} {task}: its narrowest hyperbolic linear layer "
                f"maps {in_features} to {out_features} features, so --rank must be at most {limit}"
            )
        if sequential_round is None:
            continue
        widest = max(min(shape) for shape in shapes)
        for rank in ranks:
            needed = math.ceil(widest / rank)
            if sequential_round < needed:
                raise _UsageError(
                    f"--sst-iterations-per-round {sequential_round} is too short for --sst-sampling sequential at "
                    f"--rank {rank} on {dataset} {task}: its widest layer has {widest} triplets, so a round needs "
                    f"ceil({widest} / {rank}) = {needed} iterations to train each; raise it or leave it out"
                )


# Phrases of library error messages and the flags that set the same thing.
# NOTE: the phrases must match the library's messages exactly, so a reworded message is shown unchanged.
_API_TO_FLAGS = (
    ("features='identity' (CLI: --features identity)", "--features identity"),
    ("try float64 (dtype=torch.float64)", "try --dtype float64"),
)


def _in_flag_terms(message: str) -> str:
    """Rewrite the library's keyword-argument advice in ``message`` as command-line flags."""
    for api, flag in _API_TO_FLAGS:
        message = message.replace(api, flag)
    return message


def main(argv: list[str] | None = None) -> int:
    """Run the ``hypersst`` command.

    Args:
        argv: the arguments without the program name (default: ``sys.argv[1:]``).

    Returns:
        The exit code: 0 on success; 2 for invalid arguments, an unwritable ``--out`` folder
        or a missing data folder; 1 when loading or training fails later (for example a missing
        file inside the data folder, or a non-finite loss); 130 when interrupted (Ctrl-C), and 143 when
        SIGTERM arrives during the runs, after saving the finished ones for ``--resume``.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    _configure_logging(args.quiet)
    try:
        return args.handler(args)
    except _UsageError as error:
        if error.show_usage:
            args.subparser.print_usage(sys.stderr)
        print(f"hypersst {args.command}: error: {error}", file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError, NotImplementedError, RuntimeError) as error:
        # The error is printed as one line on stderr and not logged as well, so it shows once.
        print(f"hypersst {args.command}: error: {_in_flag_terms(str(error))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        # The run loop reports interrupts during the runs. This one came before or after them.
        print(
            f"hypersst {args.command}: interrupted; the runs that finished are saved in "
            f"{Path(args.out) / RUNS_FOLDER}, and the same command with --resume reuses them",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
