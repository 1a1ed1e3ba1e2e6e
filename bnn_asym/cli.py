"""The ``bnn-asym`` command line.

bnn-asym demo                     the three network kinds and their symmetry check, on digits
bnn-asym fit  --data moons --engine nuts --symmetry standard w_asym     fit BNNs, compare, save posteriors
bnn-asym evaluate POSTERIOR.nc --data digits --ood noise rotated        uncertainty, OOD detection, shift
bnn-asym lmc  --data mnist --model mlp     linear mode connectivity: table, JSON and plot
bnn-asym mli  --data mnist --model mlp     monotonic linear interpolation: table, JSON and plot
bnn-asym merge --data digits --runs 3      model merging without / with alignment and REPAIR
bnn-asym zoo --data digits --n-networks 1000   a model zoo per symmetry kind (resumable)
bnn-asym metanet runs/zoo --mli           metanetworks (R^2, Kendall tau) and MLI over a zoo
bnn-asym bench SUITE                      benchmark suites: engines x symmetries x networks x data x seeds
bnn-asym report STORE                     Markdown + PNG report of a benchmark store
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

DEFAULTS = argparse.ArgumentDefaultsHelpFormatter  # every --help shows each option's default


def _default_report_dir(store: str) -> Path:
    """Where a report goes without --out: beside the store, named after it (runs/bench.sqlite -> runs/bench_report)."""
    path = Path(store)
    return path.with_name(f"{path.stem}_report")


def _cmd_demo(args) -> int:
    import torch

    from . import MLP, datasets
    from .symmetry import permute_free, random_permutations

    ds = datasets.load("digits", seed=args.seed)
    x = torch.as_tensor(ds.X_test[:256], dtype=torch.float64)
    rng = np.random.default_rng(args.seed)
    print(f"data: {ds}")
    print(f"{'symmetry':<12} {'free params':>12} {'max |f(x) - f_perm(x)|':>24}   permutation-invariant?")
    for symmetry in ("standard", "w_asym", "sigma_asym"):
        net = MLP(ds.n_features, (32, 32), int(ds.n_classes or 2), symmetry=symmetry, seed=args.seed)
        params = net.init(seed=args.seed, dtype="float64")
        permuted = permute_free(net, params, random_permutations(net, rng))
        outputs = [
            net.apply_torch({k: torch.as_tensor(v) for k, v in p.items()}, x).numpy() for p in (params, permuted)
        ]
        change = float(np.abs(outputs[0] - outputs[1]).max())
        print(f"{symmetry:<12} {net.num_free_params:>12,} {change:>24.3g}   {'yes' if change < 1e-9 else 'no'}")
    return 0


def _parse_options(pairs: list[str]) -> dict:
    """``key=value`` strings -> dict; values parsed as Python literals where possible (ints, floats, None)."""
    import ast

    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--option {pair!r} is not valid; accepted: key=value (e.g. num_samples=500)")
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value
    return out


def _cmd_fit(args) -> int:
    import time
    from pathlib import Path

    from . import set_cpu_devices

    set_cpu_devices(max(2, args.chains))  # before JAX starts: NUTS chains run in parallel
    import torch

    torch.set_num_threads(1)
    from . import datasets, fit, load
    from .inference import get_engine
    from .metrics import classification_metrics, gaussian_nll

    options = _parse_options(args.option)
    if "num_chains" in get_engine(args.engine).option_names():
        options.setdefault("num_chains", args.chains)
    from .nets.builder import NetworkConfig, network_for_data

    ds = datasets.load(args.data, seed=args.seed, n_samples=args.n_samples)
    print(f"data: {ds}")
    config = NetworkConfig(
        args.model, hidden=None if args.hidden is None else tuple(args.hidden), norm=args.norm, seed=args.seed
    )
    settings = {k: getattr(args, k) for k in ("engine", "seed", "init", "backend", "device")}
    rows = []
    for symmetry in args.symmetry:
        net = network_for_data(config, ds, symmetry)
        start = time.perf_counter()
        post = fit(net, ds.X_train, ds.y_train, progress=not args.no_progress, **settings, **options)
        wall = time.perf_counter() - start
        d = post.diagnostics()
        row = {"symmetry": symmetry, "free params": f"{net.num_free_params:,}", "fit s": f"{wall:.1f}"}
        if ds.task == "classification":
            m = classification_metrics(post.predict(ds.X_test), ds.y_test)
            row.update({"test acc": f"{m['accuracy']:.3f}", "test NLL": f"{m['nll']:.3f}", "ECE": f"{m['ece']:.3f}"})
        else:
            mean, std = post.predict(ds.X_test)
            rmse = float(((mean - ds.y_test) ** 2).mean() ** 0.5)
            row.update({"test RMSE": f"{rmse:.3f}", "test NLL": f"{gaussian_nll(mean, std, ds.y_test):.3f}"})
        if "predictions" in d:
            row["max R-hat (pred)"] = f"{d['predictions']['max_rhat']:.3f}"
            row["min ESS (pred)"] = f"{d['predictions']['min_ess_bulk']:.0f}"
            row["max R-hat (params)"] = f"{d['parameters']['max_rhat']:.3f}"
        if "num_divergences" in d:
            row["divergences"] = str(d["num_divergences"])
        if "final_elbo" in d:
            row["final ELBO"] = f"{d['final_elbo']:.1f}"
        rows.append(row)
        if args.save:
            path = Path(args.save) / f"{args.data}_{args.model}_{symmetry}_{args.engine}.nc"
            post.save(path)
            load(path)  # a saved posterior must read back
            print(f"saved {path}")
    keys = list(dict.fromkeys(k for r in rows for k in r))
    print(f"\nengine: {args.engine}, network: {config.label()}")
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for r in rows:
        print("| " + " | ".join(r.get(k, "") for k in keys) + " |")
    return 0


def _shift_rows(post, ds, angles) -> list[dict]:
    from .datasets import rotated

    rows = []
    for angle in angles:
        got = post.evaluate(rotated(ds, angle), ds.y_test)
        rows.append({"angle": float(angle), **got["metrics"], **got["uncertainty"]})
    return rows


def _cmd_evaluate(args) -> int:
    """Scores a saved posterior on a data set's test split, against OOD sets and under rotation."""

    from . import datasets, load

    post = load(args.posterior)
    ds = datasets.load(args.data, seed=args.seed, n_samples=args.n_samples)
    inputs = int(np.prod(post.model.net.input_shape))  # type: ignore[attr-defined]  # every family has one
    if ds.n_features != inputs:
        raise ValueError(
            f"the posterior takes {inputs} inputs but {ds.name!r} has {ds.n_features} features; --data must be "
            "the data set it was fit on"
        )
    wanted = list(dict.fromkeys(args.ood or []))
    classes = post.model.n_outputs if post.model.likelihood.name != "bernoulli" else 2
    ood = {}
    if "heldout-classes" in wanted:
        in_classes = args.in_classes if args.in_classes is not None else list(range(classes))
        ds, ood["heldout-classes"] = datasets.heldout_classes(ds, in_classes)
    if ds.task == "classification" and classes != ds.n_classes:
        raise ValueError(
            f"the posterior predicts {classes} classes but {ds.name!r} has {ds.n_classes}; a posterior trained on "
            "a subset of the classes is scored with --ood heldout-classes --in-classes (the classes it was fit on)"
        )
    for kind in wanted:
        if kind not in ("heldout-classes", "rotated"):
            ood[kind] = datasets.ood_inputs(ds, kind, seed=args.seed)
    result = post.evaluate(ds.X_test, ds.y_test, ood=ood)
    print(f"posterior: {post}\ndata: {ds}")
    print("\n| " + " | ".join(result["metrics"]) + " |\n|" + "---|" * len(result["metrics"]))
    print("| " + " | ".join(f"{v:.4f}" for v in result["metrics"].values()) + " |")
    if "uncertainty" in result:
        u = result["uncertainty"]
        print("\n| " + " | ".join(u) + " |\n|" + "---|" * len(u))
        print("| " + " | ".join(f"{v:.4f}" for v in u.values()) + " |")
    if result["ood"]:
        print("\n| OOD set | criterion | AUROC | AUPR | FPR at 95% TPR |\n|---|---|---|---|---|")
        for name, by_criterion in result["ood"].items():
            for criterion, m in by_criterion.items():
                print(f"| {name} | {criterion} | {m['auroc']:.3f} | {m['aupr']:.3f} | {m['fpr95']:.3f} |")
    if "rotated" in wanted:
        result["shift"] = _shift_rows(post, ds, args.angles)
        print("\n| rotation (degrees) | accuracy | NLL | ECE | total entropy | mutual information |")
        print("|---|---|---|---|---|---|")
        for r in result["shift"]:
            print(
                f"| {r['angle']:g} | {r['accuracy']:.3f} | {r['nll']:.3f} | {r['ece']:.3f} | "
                f"{r['total_entropy']:.3f} | {r['mutual_information']:.3f} |"
            )
    _write_json(args.json, result)
    return 0


def _write_json(path: str | None, result: dict) -> None:
    """Every number of a command's result as JSON (atomically), when --json gave a path."""
    if path:
        import json

        from .io import atomic_write_text

        atomic_write_text(Path(path), json.dumps(result, indent=1))
        print(f"wrote {path}")


def _cmd_zoo(args) -> int:
    from . import zoo

    cfg = zoo.ZooConfig(
        data=args.data,
        family=args.family,
        symmetries=tuple(args.symmetry),
        n_networks=args.n_networks,
        chunk_size=args.chunk_size,
        epochs_low=args.epochs[0],
        epochs_high=args.epochs[1],
        n_samples=args.n_samples,
        seed=args.seed,
    )
    z = zoo.build(cfg, args.out, progress=not args.no_progress)
    print(f"zoo at {z.path}: {cfg.family} on {cfg.data}")
    print(
        "| symmetry | networks | diverged | test accuracy: mean | min | max | training s (recorded chunks) |\n"
        "|---|---|---|---|---|---|---|"
    )
    timed = z.training_seconds()
    for symmetry in cfg.symmetries:
        rows = z.rows(symmetry)
        acc = np.array([r["test_accuracy"] for r in rows])
        diverged = sum(r["diverged"] for r in rows)
        t = timed.get(symmetry)
        seconds = f"{t['seconds']:.0f} ({t['networks']} networks)" if t else "not recorded"
        print(
            f"| {symmetry} | {len(rows)} | {diverged} | {acc.mean():.3f} | {acc.min():.3f} | {acc.max():.3f} "
            f"| {seconds} |"
        )
    return 0


def _cmd_metanet(args) -> int:

    from . import zoo

    z = zoo.Zoo(args.zoo)
    result: dict = {"zoo": str(z.path), "config": z.config.to_dict()}
    result["metanets"] = zoo.metanet_table(z, args.kinds, range(args.seeds), args.epochs, args.symmetry)
    print("| symmetry | metanet | test R^2 | Kendall tau |\n|---|---|---|---|")
    for symmetry, by_kind in result["metanets"].items():
        for kind, r in by_kind.items():
            if "not_applicable" in r:
                print(f"| {symmetry} | {kind} | not applicable | not applicable |")
                continue
            print(
                f"| {symmetry} | {kind} | {r['r2_mean']:.3f} ± {r['r2_std']:.3f} | "
                f"{r['tau_mean']:.3f} ± {r['tau_std']:.3f} |"
            )
    if args.mli:
        result["mli"] = zoo.mli_table(z, symmetries=args.symmetry)
        print("\n| symmetry | networks | monotonic | Δ | local convexity | globally convex |")
        print("|---|---|---|---|---|---|")
        for symmetry, r in result["mli"].items():
            print(
                f"| {symmetry} | {r['networks']} | {100 * r['monotonic']:.1f}% | {r['max_increase']:.4f} | "
                f"{r['local_convexity']:.3f} | {100 * r['globally_convex']:.1f}% |"
            )
    _write_json(args.json, result)
    return 0


def _print_report(report: dict, paths: list, store: str) -> int:
    """The table, how many jobs came from the store, and where the outputs went."""
    print(paths[0].read_text())
    print(f"reused {report['jobs_reused']} of {report['jobs']} jobs from {store}")
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


def _cmd_phenomenon(args) -> int:
    import torch

    from .bench.machine import machine_description
    from .bench.phenomena import PhenomenonConfig, run_lmc, run_merge, run_mli, write_report
    from .bench.store import ResultsStore
    from .training import TrainConfig

    torch.set_num_threads(args.threads)
    train = TrainConfig(**{k: getattr(args, k) for k in ("epochs", "batch_size", "lr", "weight_decay", "schedule")})
    experiment = {k: getattr(args, k) for k in ("data", "model", "runs", "n_points", "seed", "n_samples")}
    cfg = PhenomenonConfig(**experiment, init_scheme=args.init, train=train)
    store = ResultsStore(args.store)
    runner = {"lmc": run_lmc, "mli": run_mli, "merge": run_merge}[args.command]
    report = runner(cfg, store, progress=not args.no_progress)
    paths = write_report(report, args.out, machine=machine_description(), tag=args.tag)
    return _print_report(report, paths, args.store)


def _cmd_reference(args) -> int:
    from .bench.suites import load_suite, network_label
    from .validate import integer

    suite = load_suite(args.suite)
    integer(0).check(args.extend, "--extend")
    if not args.check:
        from . import set_cpu_devices

        set_cpu_devices(2)
    from .bench.harness import suite_references
    from .bench.store import BenchStore

    log = lambda m: print(m, file=sys.stderr)  # noqa: E731
    rows = suite_references(suite, BenchStore(args.store), args.extend, args.check, not args.no_progress, log)
    bad = 0
    for cfg, ref in rows:
        where = f"{cfg['data']['name']} {network_label(cfg['network'])} {cfg['symmetry']}"
        if ref is None:
            bad += 1
            print(f"{where}: missing")
            continue
        bad += bool(ref["flagged"])
        state = "flagged" if ref["flagged"] else "passed"
        print(
            f"{where}: {state}, max prediction R-hat {ref['rhat_pred_max']:.3f} (threshold {ref['threshold']}), "
            f"chainwise {ref.get('rhat_pred_chainwise_max', float('nan')):.3f}, nested "
            f"{ref.get('rhat_pred_nested_max', float('nan')):.3f}, {ref.get('rounds', 1)} round(s), "
            f"{ref['wall_s']:.0f} s"
        )
    return 1 if bad else 0


def _cmd_bench(args) -> int:
    from .bench.suites import load_suite

    suite = load_suite(args.suite)  # validated before anything heavy is imported or run
    overrides = {}
    if args.seeds:
        overrides["seeds"] = tuple(args.seeds)
    if args.init:
        import dataclasses

        overrides["networks"] = tuple(dataclasses.replace(n, init=args.init) for n in suite.networks)
    suite = suite.with_overrides(**overrides) if overrides else suite
    if args.scheduler is None:  # references (and in-process cells) run their chains in parallel over 2 devices
        from . import set_cpu_devices

        set_cpu_devices(2)
    import torch

    torch.set_num_threads(1)
    from .bench.harness import run_suite
    from .bench.machine import machine_description
    from .bench.report import write_report
    from .bench.store import BenchStore

    store = BenchStore(args.store)
    posterior_dir = None
    if args.save_posteriors:
        from pathlib import Path

        posterior_dir = Path(args.store).with_suffix("").parent / f"{Path(args.store).stem}_posteriors"
        posterior_dir.mkdir(parents=True, exist_ok=True)
    summary = run_suite(
        suite,
        store,
        backend=args.backend,
        jobs=args.jobs,
        scheduler=args.scheduler,
        progress=not args.no_progress,
        posterior_dir=posterior_dir,
        log=lambda m: print(m, file=sys.stderr),
    )
    print(f"suite {suite.name}: {summary['computed']} cells computed, {summary['reused']} reused from {args.store}")
    if args.export:
        print(f"wrote {store.export_csv(args.export)}")
    out = args.out or _default_report_dir(args.store)
    paths = write_report(store, out, suite=suite.name, machine=machine_description())
    print(paths[0].read_text())
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


def _cmd_report(args) -> int:
    from pathlib import Path

    from .bench.report import write_report
    from .bench.store import BenchStore

    if not Path(args.store).exists():
        raise ValueError(f"no results store at {args.store}")
    store = BenchStore(args.store)
    paths = write_report(store, args.out or _default_report_dir(args.store), suite=args.suite, machine=args.machine)
    if args.export:
        paths.append(store.export_csv(args.export))
    print(paths[0].read_text())
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


def _cmd_engines(args) -> int:
    from .inference.catalog import describe, options_markdown

    print(options_markdown() if args.markdown else describe(args.name))
    return 0


def _subparser(sub, name: str, help_text: str) -> argparse.ArgumentParser:
    """A subcommand whose --help shows every option's default."""
    return sub.add_parser(name, help=help_text, description=help_text, formatter_class=DEFAULTS)


def _add_rows_argument(parser, note: str = "") -> None:
    """--n-rows (old name --n-samples, kept as an alias): how many rows of the data set to use."""
    parser.add_argument(
        "--n-rows",
        "--n-samples",
        dest="n_samples",
        type=int,
        default=None,
        help=f"data rows to use (a subsample{note}); default: all of them",
    )


def _add_phenomenon_parser(sub, name: str, help_text: str, runs_help: str):
    from .bench import PHENOMENON_MODELS as MODELS
    from .datasets import NAMES
    from .nets.spec import INIT_SCHEMES

    p = _subparser(sub, name, help_text)
    p.add_argument("--data", default="mnist", choices=NAMES, help="offline data set")
    p.add_argument("--model", default="mlp", choices=MODELS, help="network of the experiment")
    p.add_argument("--runs", type=int, default=5, help=runs_help)
    p.add_argument("--epochs", type=int, default=20, help="training epochs per network")
    p.add_argument("--batch-size", type=int, default=128, help="training mini-batch")
    p.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate")
    p.add_argument("--weight-decay", type=float, default=1e-4, help="AdamW weight decay")
    p.add_argument("--schedule", default="cosine", choices=("cosine", "constant"), help="learning-rate schedule")
    p.add_argument("--n-points", type=int, default=25, help="points on each interpolation path (odd)")
    _add_rows_argument(p)
    p.add_argument("--seed", type=int, default=0, help="seed of the data split and the networks")
    p.add_argument(
        "--init",
        default="kaiming_normal",
        choices=INIT_SCHEMES,
        help="init scheme of the trained networks (the paper's scripts used torch_default)",
    )
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest and most robust on small CPUs)")
    p.add_argument("--out", default="runs", help="folder for the table, JSON and plot")
    p.add_argument("--store", default="runs/phenomena.sqlite", help="SQLite store of finished jobs (for resuming)")
    p.add_argument("--tag", default="", help="suffix for the output file names (to keep several settings apart)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_phenomenon)


def _add_fit_parser(sub) -> None:
    from .datasets import NAMES
    from .inference import ENGINES
    from .nets.builder import FAMILIES, FAMILY_DEFAULTS
    from .nets.spec import INIT_SCHEMES, NORMS, SYMMETRIES

    f = _subparser(sub, "fit", "fit BNNs (one per symmetry kind) with any engine; compare and save posteriors")
    f.add_argument("--data", default="moons", choices=NAMES, help="offline data set")
    f.add_argument("--model", default="mlp", choices=FAMILIES, help="network family (bnn_asym.nets.builder)")
    mlp_hidden = " ".join(map(str, FAMILY_DEFAULTS["mlp"]["hidden"]))
    f.add_argument(
        "--hidden",
        type=int,
        nargs="+",
        default=None,
        help=f"hidden widths (mlp; cnn: dense layers after the convs); None: mlp {mlp_hidden}, cnn none",
    )
    f.add_argument("--norm", default=None, choices=NORMS, help="normalisation layers; None: the family's")
    f.add_argument(
        "--symmetry",
        nargs="+",
        default=["standard", "w_asym"],
        choices=SYMMETRIES,
        help="network kinds to fit, one posterior each",
    )
    f.add_argument("--engine", default="nuts", choices=list(ENGINES), help="inference engine (bnn-asym engines)")
    f.add_argument(
        "--option",
        action="append",
        metavar="KEY=VALUE",
        help="engine option, repeatable (bnn-asym engines NAME lists them)",
    )
    f.add_argument("--chains", type=int, default=2, help="chains, for engines that run several")
    f.add_argument(
        "--init",
        default=None,
        choices=INIT_SCHEMES + ("map", "ensemble"),
        help="how chains start: an init scheme, a MAP estimate, or one MAP per chain; None: the "
        "network's kaiming_normal init (SWAG: a MAP estimate)",
    )
    f.add_argument("--backend", default="numpyro", choices=("numpyro", "pyro"), help="PPL backend")
    f.add_argument("--device", default="auto", choices=("auto", "cpu", "gpu"), help="where JAX engines run")
    _add_rows_argument(f, "; not posterior draws")
    f.add_argument("--seed", type=int, default=0, help="seed of the data split, the networks and the engine")
    f.add_argument("--save", default=None, metavar="DIR", help="save each posterior (NetCDF) in this folder")
    f.add_argument("--no-progress", action="store_true", help="no progress bars")
    f.set_defaults(func=_cmd_fit)


def _add_evaluate_parser(sub) -> None:
    from .datasets import NAMES, OOD_KINDS, ROTATION_ANGLES

    e = _subparser(
        sub,
        "evaluate",
        "score a saved posterior: test metrics, entropy / mutual information, OOD detection (AUROC, AUPR, "
        "FPR95) and accuracy under rotation",
    )
    e.add_argument("posterior", help="a posterior saved by fit (--save) or Posterior.save (.nc)")
    e.add_argument("--data", required=True, choices=NAMES, help="the data set the posterior was fit on")
    e.add_argument("--seed", type=int, default=0, help="seed of the data split (as at fit time) and of the OOD sets")
    _add_rows_argument(e)
    e.add_argument(
        "--ood",
        nargs="+",
        default=None,
        choices=OOD_KINDS + ("rotated", "heldout-classes"),
        help="OOD sets (bnn_asym.datasets.ood_inputs), rotated test images (a shift table), or the classes the "
        "posterior was not fit on",
    )
    e.add_argument(
        "--angles", type=float, nargs="+", default=list(ROTATION_ANGLES), help="rotation angles for --ood rotated"
    )
    e.add_argument(
        "--in-classes",
        type=int,
        nargs="+",
        default=None,
        help="with heldout-classes: the classes the posterior was fit on; None: 0 .. its outputs - 1",
    )
    e.add_argument("--json", default=None, metavar="FILE", help="also write every number as JSON")
    e.set_defaults(func=_cmd_evaluate)


def _add_zoo_parsers(sub) -> None:
    from .zoo import DATA, FAMILIES, SYMMETRIES

    z = _subparser(sub, "zoo", "train a model zoo: networks per symmetry kind with sampled hyper-parameters; resumable")
    z.add_argument("--data", default="digits", choices=DATA, help="offline data set")
    z.add_argument("--family", default="cnn", choices=FAMILIES, help="network of the zoo (bnn_asym.zoo.zoo_spec)")
    z.add_argument("--symmetry", nargs="+", default=list(SYMMETRIES), choices=SYMMETRIES, help="symmetry kinds")
    z.add_argument("--n-networks", type=int, default=1000, help="networks per symmetry kind")
    z.add_argument("--chunk-size", type=int, default=50, help="networks trained together by one vmapped program")
    z.add_argument("--epochs", type=int, nargs=2, default=[10, 40], metavar=("LOW", "HIGH"), help="epochs range")
    _add_rows_argument(z)
    z.add_argument("--seed", type=int, default=0, help="seed of the data split, the specs and the sampling")
    z.add_argument("--out", default="runs/zoo", help="the zoo's folder (index.sqlite and NetCDF chunks)")
    z.add_argument("--no-progress", action="store_true", help="no progress bars")
    z.set_defaults(func=_cmd_zoo)

    m = _subparser(sub, "metanet", "predict a zoo's test accuracies from its weights (MLP, StatNN, DeepSets, NFN)")
    m.add_argument("zoo", help="a zoo folder written by bnn-asym zoo")
    m.add_argument(
        "--kinds",
        nargs="+",
        default=None,
        choices=("mlp", "statnn", "deepsets", "nfn"),
        help="None: mlp statnn deepsets (nfn, a permutation-equivariant neural functional, takes minutes per fit)",
    )
    m.add_argument("--seeds", type=int, default=5, help="splits and inits per metanet")
    m.add_argument("--epochs", type=int, default=1000, help="full-batch Adam steps per penalty")
    m.add_argument("--symmetry", nargs="+", default=None, choices=SYMMETRIES, help="only these kinds (None: all)")
    m.add_argument("--mli", action="store_true", help="also the MLI statistics of every network")
    m.add_argument("--json", default=None, metavar="FILE", help="also write every number as JSON")
    m.set_defaults(func=_cmd_metanet)


def _add_suite_arguments(parser, store_help: str) -> None:
    """The suite and store arguments that bench and reference share."""
    from .bench.suites import builtin_suites

    parser.add_argument("suite", help=f"a built-in suite ({', '.join(builtin_suites())}) or a TOML/YAML file")
    parser.add_argument("--store", default="runs/bench.sqlite", help=store_help)


def _add_bench_parsers(sub) -> None:
    from .nets.spec import INIT_SCHEMES

    b = _subparser(
        sub,
        "bench",
        "run a benchmark suite: every engine x symmetry x network x data x seed, "
        "scored against reference posteriors; resumable",
    )
    _add_suite_arguments(b, "SQLite store of finished cells (for resuming)")
    b.add_argument(
        "--backend",
        default="inprocess",
        choices=("inprocess", "joblib", "dask"),
        help="where cells run: this process, local worker processes, or a dask cluster",
    )
    b.add_argument("--jobs", type=int, default=2, help="local workers (joblib, or a local dask cluster)")
    b.add_argument("--scheduler", default=None, metavar="ADDRESS", help="a dask scheduler, e.g. tcp://host:8786")
    b.add_argument("--seeds", type=int, nargs="+", default=None, help="override the suite's seeds")
    b.add_argument("--init", default=None, choices=INIT_SCHEMES, help="override every network's init scheme")
    b.add_argument("--export", default=None, metavar="CSV", help="also write the tidy metric rows as CSV")
    b.add_argument("--save-posteriors", action="store_true", help="save every cell's posterior as NetCDF")
    b.add_argument(
        "--out", default=None, help="folder for the report (Markdown, JSON, PNG); None: <store without .sqlite>_report/"
    )
    b.add_argument("--no-progress", action="store_true", help="no progress bars")
    b.set_defaults(func=_cmd_bench)

    ref = _subparser(
        sub,
        "reference",
        "compute, extend or check the reference posteriors of a suite alone (exit status 1 while one is missing or "
        "flagged)",
    )
    _add_suite_arguments(ref, "SQLite store the references live in")
    ref.add_argument("--check", action="store_true", help="compute nothing: list the references and their state")
    ref.add_argument(
        "--extend", type=int, default=0, metavar="N", help="recompute flagged references with N more rounds"
    )
    ref.add_argument("--no-progress", action="store_true", help="no progress bars")
    ref.set_defaults(func=_cmd_reference)

    r = _subparser(sub, "report", "write the Markdown + PNG report of a benchmark store")
    r.add_argument("store", help="a store written by bnn-asym bench")
    r.add_argument(
        "--suite",
        action="append",
        default=None,
        help="only this suite's cells; repeat it for one report of several (named after the first); None: all",
    )
    r.add_argument("--out", default=None, help="folder for the report; None: <store without .sqlite>_report/")
    r.add_argument("--export", default=None, metavar="CSV", help="also write the tidy metric rows as CSV")
    r.add_argument("--machine", default=None, help="machine line for the report")
    r.set_defaults(func=_cmd_report)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bnn-asym", description="Bayesian deep learning with asymmetric networks", formatter_class=DEFAULTS
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = _subparser(sub, "demo", "build standard, W-Asym and sigma-Asym MLPs and check permutation symmetry")
    demo.add_argument("--seed", type=int, default=0, help="seed of the networks and the permutations")
    demo.set_defaults(func=_cmd_demo)
    e = _subparser(sub, "engines", "list the inference engines, or one engine's options and their defaults")
    e.add_argument("name", nargs="?", default=None, help="an engine; None: all of them")
    e.add_argument("--markdown", action="store_true", help="every engine's options as Markdown tables")
    e.set_defaults(func=_cmd_engines)
    _add_fit_parser(sub)
    _add_evaluate_parser(sub)
    _add_phenomenon_parser(
        sub, "lmc", "linear mode connectivity: standard, aligned, sigma-Asym, W-Asym pairs", "pairs per variant"
    )
    _add_phenomenon_parser(
        sub, "mli", "monotonic linear interpolation from init to trained weights", "networks per variant"
    )
    _add_phenomenon_parser(
        sub,
        "merge",
        "model merging: naive / weight matching / + REPAIR averages of independently trained networks, one task "
        "and split across two",
        "parent sets per variant",
    )
    _add_zoo_parsers(sub)
    _add_bench_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, FloatingPointError, FileNotFoundError) as e:  # bad input, a diverged run: a message
        print(f"bnn-asym {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
