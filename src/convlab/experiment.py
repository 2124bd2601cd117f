"""``convlab experiment degradation``: He et al. 2016's Figure 6 on convlab's own nets.

A plain net and a residual net at each depth (plain-20, resnet-20, plain-56, resnet-56 by default) are
trained with one recipe, the same seed and so the same batch order, each a normal run directory under
the experiment's directory (resumable, comparable, reportable), logging every k steps the training
loss and error and the gradient norm of every conv and linear layer (steps.jsonl). Then:

    results.json        the recipe, and per member its final training and test error, time, images/s
    degradation.png     Figure 6's layout: plain nets left, residual nets right, same axes;
                        training error per iteration thin, test error bold
    gradients.png       the gradient norm of each layer by depth, at the first step and at the end
    verdict             sentences computed from the numbers, whatever they say

An interrupted experiment continues with ``--resume``: finished members are read back, not retrained,
an unfinished one resumes from its last checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

from .errors import UsageError
from .fileio import write_text

__all__ = ["PRESETS", "Preset", "degradation", "verdict", "final_train_error", "plot_degradation",
           "plot_gradients", "member_names"]


@dataclass(frozen=True)
class Preset:
    """One recipe for every member. ``width`` is the first stage's channels (the paper: 16);
    ``train_subset``/``test_subset`` take the first N images (None: all)."""

    name: str
    data: str
    width: int
    batch_size: int
    lr: float
    momentum: float
    weight_decay: float
    schedule: str
    warmup: float
    epochs: int
    max_steps: int | None
    augment: str
    log_every: int
    resize: int | None = None
    train_subset: int | None = None
    test_subset: int | None = None
    eval_every: int = 1
    describe: str = ""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


PRESETS: dict[str, Preset] = {
    # He et al. 2016 §4.2: batch 128, SGD lr 0.1, momentum 0.9, weight decay 1e-4, 64k iterations,
    # lr/10 at 32k and 48k (the "paper" schedule: 50% and 75%), 4-pixel-padded crops and flips.
    "paper": Preset("paper", "cifar10", 16, 128, 0.1, 0.9, 1e-4, "paper", 0.0, 164, 64_000, "crop=4,flip", 100,
                    describe="He et al. 2016 §4.2 on CIFAR-10 (for a GPU)"),
    # The CPU budget: narrow nets (4-8-16 channels) on Fashion-MNIST at 14x14, a 12k-image subset,
    # the paper's optimiser and step schedule squeezed into 900 steps, with a short warm-up (the paper
    # warms ResNet-110 up the same way). See the README's "The degradation experiment" for what it shows.
    "quick": Preset("quick", "fashion-mnist", 4, 128, 0.1, 0.9, 1e-4, "paper", 0.05, 10, 900, "none", 10,
                    resize=14, train_subset=12_000, test_subset=2_000, eval_every=1,
                    describe="narrow nets on Fashion-MNIST 14x14, 900 steps (2 CPU cores, minutes)"),
}


def member_names(depths: list[int]) -> list[str]:
    """plain-N then resnet-N for each depth, shallowest first."""
    return [f"{kind}{d}" for d in depths for kind in ("plain", "resnet")]


def parse_depths(text: str) -> list[int]:
    from . import zoo

    try:
        depths = sorted({int(t) for t in text.split(",") if t.strip()})
    except ValueError:
        raise UsageError(f"--depths {text!r}: write depths separated by commas, e.g. 20,56") from None
    known = sorted(int(n[5:]) for n in zoo.list_models("plain*"))
    bad = [d for d in depths if d not in known]
    if bad or len(depths) < 2:
        raise UsageError(f"--depths {text!r}: needs two or more of the zoo's depths {','.join(map(str, known))}"
                         + (f" ({', '.join(map(str, bad))} not among them)" if bad else ""))
    return depths


# ---------------------------------------------------------------------------------------------
# the numbers


def final_train_error(steps: list[dict], fraction: float = 0.1) -> float | None:
    """The training error over the last ``fraction`` of the logged steps (images-weighted): the end
    of the thin curve, not the epoch average that includes its start."""
    rows = [r for r in steps if r.get("train_error") is not None]
    if not rows:
        return None
    last = rows[-1]["step"]
    tail = [r for r in rows if r["step"] > last * (1 - fraction)] or rows[-1:]
    n = sum(r["images"] for r in tail)
    return sum(r["train_error"] * r["images"] for r in tail) / max(n, 1)


def _grad_ratio(steps: list[dict], at: str) -> float | None:
    """First layer's gradient norm over the last layer's, at the first logged step or the last."""
    rows = [r for r in steps if r.get("grad_norm")]
    if not rows:
        return None
    g = (rows[0] if at == "first" else rows[-1])["grad_norm"]
    vals = list(g.values())
    if not vals or not vals[-1] or not math.isfinite(vals[0]) or not math.isfinite(vals[-1]):
        return None
    return vals[0] / vals[-1]


def _flow(start: float, end: float) -> str:
    """What the plain net's first-over-last gradient ratios say, in words."""
    if min(start, end) < 0.1:
        return ": the plain net's first layer gets a far smaller gradient than its last (vanishing)"
    if max(start, end) > 10:
        return (": the plain net's gradient grows toward the input (it explodes rather than vanishes, batch norm "
                "keeping the forward signal in scale)")
    return ": the first layer's gradient does not vanish in the plain net"


def _pct(v):
    return f"{100 * v:.1f}%" if v is not None else "-"


def verdict(results: dict, tolerance: float = 0.005) -> list[str]:
    """Sentences computed from ``results["members"]`` (each with ``train_error``, ``test_error`` and
    optionally ``grad_first_over_last_start``/``..._end``): the shallowest depth against each deeper
    one, for the plain nets and the residual nets, whatever the numbers say. Two errors closer than
    ``tolerance`` (0.5 points) are called level."""
    m = results["members"]
    depths = sorted(results["depths"])
    lo = depths[0]
    out = []
    for hi in depths[1:]:
        for kind, label in (("plain", "plain"), ("resnet", "residual")):
            a, b = m.get(f"{kind}{lo}", {}), m.get(f"{kind}{hi}", {})
            ea, eb = a.get("train_error"), b.get("train_error")
            if ea is None or eb is None:
                out.append(f"{kind}-{hi} vs {kind}-{lo}: not both finished, no verdict")
                continue
            head = f"{kind}-{hi} ends with {_pct(eb)} training error against {kind}-{lo}'s {_pct(ea)}"
            if eb > ea + tolerance:
                tail = (f"the deeper {label} net trains worse (degradation)" if kind == "plain" else
                        f"the deeper residual net is behind too at this budget (the paper's ResNet-{hi} ends below "
                        f"ResNet-{lo}; this run does not show it)")
            elif eb < ea - tolerance:
                tail = (f"the deeper plain net trains better: no degradation at this budget" if kind == "plain"
                        else "the deeper residual net trains better: depth helps once the input is added back")
            else:
                tail = f"level within {100 * tolerance:.1f} points" + (
                    ": no degradation at this budget" if kind == "plain" else ": depth costs the residual net nothing")
            out.append(f"{head}: {tail}.")
    for hi in depths[1:]:
        p, r = m.get(f"plain{hi}", {}), m.get(f"resnet{hi}", {})
        ps, rs = p.get("grad_first_over_last_start"), r.get("grad_first_over_last_start")
        pe, re_ = p.get("grad_first_over_last_end"), r.get("grad_first_over_last_end")
        if None in (ps, rs, pe, re_):
            continue
        out.append(f"Gradient flow at depth {hi}: the first conv's gradient norm is {ps:.2g}x the fc's in the plain "
                   f"net and {rs:.2g}x in the residual net at the first step, {pe:.2g}x and {re_:.2g}x at the end"
                   + _flow(ps, pe) + ".")
    return out


# ---------------------------------------------------------------------------------------------
# the pictures


def _colors(depths):
    base = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]
    return {d: base[i % len(base)] for i, d in enumerate(sorted(depths))}


def plot_degradation(curves: dict, depths: list[int], path: Path, title: str = "") -> Path:
    """Figure 6's layout. ``curves[member] = (steps rows, test points [(step, error)])``: training error
    per logged step thin, test error bold; plain nets left, residual nets right, one y range."""
    from .viz import _plt, save

    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    colors = _colors(depths)
    ymax = 0.0
    for ax, kind, name in ((axes[0], "plain", "plain"), (axes[1], "resnet", "ResNet")):
        for d in depths:
            steps, test = curves.get(f"{kind}{d}", ([], []))
            if steps:
                xs, ys = [r["step"] for r in steps], [100 * r["train_error"] for r in steps]
                ax.plot(xs, ys, "-", lw=0.8, color=colors[d], alpha=0.85, label=f"{name}-{d} train")
                ymax = max(ymax, max(ys))
            if test:
                ax.plot([t[0] for t in test], [100 * t[1] for t in test], "-", lw=2.6, color=colors[d],
                        marker="o", ms=3, label=f"{name}-{d} test")
                ymax = max(ymax, max(100 * t[1] for t in test))
        ax.set_title(f"{name} nets")
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", bbox_to_anchor=(0.0, -0.16), ncol=2, fontsize=8, frameon=False)
    axes[0].set_ylabel("error (%)")
    axes[0].set_ylim(0, min(100, ymax * 1.05 + 1))
    if title:
        fig.suptitle(title, fontsize=10)
    return save(fig, path)


def plot_gradients(grads: dict, depths: list[int], path: Path) -> Path:
    """``grads[member] = (first row's grad_norm, last row's)``: the norm of each conv/linear layer's
    weight gradient against its depth (1 = the first conv), log scale; first step dashed, end solid."""
    from .viz import _plt, save

    plt = _plt()
    fig, axes = plt.subplots(1, len(depths), figsize=(5 * len(depths), 4), squeeze=False, sharey=True)
    for ax, d in zip(axes[0], depths):
        for kind, color in (("plain", "#d62728"), ("resnet", "#1f77b4")):
            first, last = grads.get(f"{kind}{d}", ({}, {}))
            for g, style, when in ((first, "--", "first step"), (last, "-", "end")):
                vals = [v for v in g.values() if v and math.isfinite(v) and v > 0]
                if vals:
                    ax.plot(range(1, len(vals) + 1), vals, style, color=color, lw=1.4,
                            label=f"{'plain' if kind == 'plain' else 'ResNet'}-{d}, {when}")
        ax.set_yscale("log")
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(f"depth {d}: gradient norm per layer")
        ax.set_xlabel("layer (1 = first conv, last = fc)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(loc="upper left", bbox_to_anchor=(0.0, -0.16), ncol=2, fontsize=8, frameon=False)
    axes[0][0].set_ylabel("‖∂loss/∂W‖")
    return save(fig, path)


# ---------------------------------------------------------------------------------------------
# the experiment


def _dataset(preset: Preset, data: str | None, data_dir: str | None):
    from .data import load

    ds = load(data or preset.data, data_dir, progress=True)
    if preset.train_subset or preset.test_subset:
        ds = dataclasses.replace(ds, train_x=ds.train_x[:preset.train_subset], train_y=ds.train_y[:preset.train_subset],
                                 test_x=ds.test_x[:preset.test_subset], test_y=ds.test_y[:preset.test_subset])
    return ds


def _config(preset: Preset, member: str, seed: int, device: str, out: Path, threads: int | None):
    from .training import TrainConfig

    return TrainConfig(model=member, data=preset.data, epochs=preset.epochs, batch_size=preset.batch_size,
                       optimizer="sgd", lr=preset.lr, momentum=preset.momentum, weight_decay=preset.weight_decay,
                       schedule=preset.schedule, warmup=preset.warmup, label_smoothing=0.0, augment=preset.augment,
                       resize=preset.resize, device=device, seed=seed, max_steps=preset.max_steps,
                       eval_every=preset.eval_every, log_every=preset.log_every, threads=threads, out=str(out),
                       overrides={"width": preset.width})


def _finished(run_dir: Path) -> bool:
    from .training.checkpoint import load_checkpoint
    from .training.config import TrainConfig

    last = run_dir / "last.pt"
    if not last.is_file():
        return False
    state = load_checkpoint(last)
    cfg = TrainConfig.from_dict(state["config"])
    return (state["epoch"] >= cfg.epochs or (cfg.max_steps is not None and state["scheduler"]["step"] >= cfg.max_steps))


def _member_result(run_dir: Path, batch_size: int) -> dict:
    from .training.rundir import RunDir

    rd = RunDir(run_dir)
    steps, metrics = rd.read_steps(), rd.read_metrics()
    evals = [m for m in metrics if m.get("test_acc") is not None]
    wall = metrics[-1]["wall_s"] if metrics else None
    step = steps[-1]["step"] if steps else 0
    ips = [m["images_per_s"] for m in metrics if m.get("images_per_s")]
    return {"run": run_dir.name, "steps": step, "train_error": final_train_error(steps),
            "test_error": 1 - evals[-1]["test_acc"] if evals else None,
            "wall_s": wall, "images_per_s": sum(ips) / len(ips) if ips else None,
            "grad_first_over_last_start": _grad_ratio(steps, "first"),
            "grad_first_over_last_end": _grad_ratio(steps, "last")}


def _test_points(metrics: list[dict], steps: list[dict]) -> list[tuple[int, float]]:
    """(step, test error) at each evaluated epoch's end, the step read from the steps log."""
    end_of = {}
    for r in steps:
        end_of[r["epoch"]] = r["step"]
    return [(end_of[m["epoch"]], 1 - m["test_acc"]) for m in metrics
            if m.get("test_acc") is not None and m["epoch"] in end_of]


def table(results: dict) -> str:
    lines = [f"{'member':<12} {'steps':>6} {'train error':>12} {'test error':>11} {'time':>8} {'images/s':>9}"]
    for name, r in results["members"].items():
        wall = f"{r['wall_s']:.0f} s" if r.get("wall_s") is not None else "-"
        ips = f"{r['images_per_s']:.0f}" if r.get("images_per_s") else "-"
        lines.append(f"{name:<12} {r.get('steps', 0):>6} {_pct(r.get('train_error')):>12} "
                     f"{_pct(r.get('test_error')):>11} {wall:>8} {ips:>9}")
    return "\n".join(lines)


def degradation(out: str | Path, depths: list[int] = (20, 56), preset: str | Preset = "quick", data: str | None = None,
                data_dir: str | None = None, device: str = "auto", seed: int = 0, resume: bool = False,
                yes: bool = False, threads: int | None = None, progress: bool | None = None,
                ask=None, _preset: Preset | None = None) -> dict:
    """Train the members and write results.json, degradation.png and gradients.png under ``out``;
    returns the results (``interrupted`` set when a member was stopped). ``preset`` is a name in
    :data:`PRESETS` or a :class:`Preset` of your own (``dataclasses.replace(PRESETS["quick"], max_steps=300)``);
    ``_preset`` replaces the named preset (the tests' miniature recipe)."""
    from .training import train
    from .training.device import device_kind

    if isinstance(preset, Preset):
        _preset = _preset or preset
    elif preset not in PRESETS and _preset is None:
        raise UsageError(f"--preset {preset!r}: choose one of {', '.join(PRESETS)}")
    p = _preset or PRESETS[preset]
    depths = sorted(depths)
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not resume:
        raise UsageError(f"{out} already holds files; continue that experiment with --resume, or give another --out")
    out.mkdir(parents=True, exist_ok=True)
    plan_file = out / "experiment.json"
    if resume and plan_file.is_file():  # the experiment's own recipe, whatever the flags say now
        saved = json.loads(plan_file.read_text())
        p, depths, seed, data = Preset(**saved["preset"]), saved["depths"], saved["seed"], saved["data"]
    elif resume:
        raise UsageError(f"{out} holds no experiment.json: nothing to resume there (leave out --resume to start one)")
    else:
        write_text(plan_file, json.dumps({"preset": p.to_dict(), "depths": depths, "seed": seed,
                                          "data": data or p.data}, indent=2) + "\n")
    ds = _dataset(p, data, data_dir)
    names = member_names(depths)
    t0 = time.perf_counter()
    interrupted = False
    asked = False
    for name in names:
        run_dir = out / name
        if resume and _finished(run_dir):
            print(f"{name}: finished earlier, read back from {run_dir}", flush=True)
            continue
        again = resume and (run_dir / "last.pt").is_file()
        cfg = _config(p, name, seed, device, run_dir, threads)
        if not again and run_dir.exists():
            import shutil

            shutil.rmtree(run_dir)  # an unfinished member that never saved a checkpoint: start it afresh
        if device_kind(device) == "cpu" and p.name == "paper" and not yes and not asked:
            _estimate_and_ask(cfg, ds, p, ask, len(names))
            asked = True
        print(f"{name}: {'resuming' if again else 'training'} ({p.name} preset, seed {seed}) -> {run_dir}", flush=True)
        run = train(config=cfg, data=ds, resume=again, progress=progress)
        if run.interrupted:
            interrupted = True
            break
    results = summarize(out, p, depths, seed, ds.name, interrupted)
    results["experiment_s"] = time.perf_counter() - t0
    write_text(out / "results.json", json.dumps(results, indent=2) + "\n")
    return results


def summarize(out: Path, p: Preset, depths: list[int], seed: int, data_name: str, interrupted: bool = False) -> dict:
    """Results, verdict and both pictures from the members found under ``out`` (those with a
    checkpoint); what an experiment writes at its end, and what it can show part-way."""
    from .training.rundir import RunDir

    results = {"experiment": "degradation", "preset": p.to_dict(), "data": data_name, "seed": seed,
               "depths": depths, "members": {}, "interrupted": interrupted}
    curves, grads = {}, {}
    for name in member_names(depths):
        rd = RunDir(out / name)
        if not (out / name / "last.pt").is_file():
            continue
        results["members"][name] = _member_result(out / name, p.batch_size)
        steps = rd.read_steps()
        curves[name] = (steps, _test_points(rd.read_metrics(), steps))
        rows = [r for r in steps if r.get("grad_norm")]
        if rows:
            grads[name] = (rows[0]["grad_norm"], rows[-1]["grad_norm"])
    results["verdict"] = verdict(results)
    title = (f"{data_name}, {p.name} preset (width {p.width}, {p.max_steps or p.epochs} steps"
             f"{f', {p.resize}x{p.resize}' if p.resize else ''}), seed {seed}")
    plot_degradation(curves, depths, out / "degradation.png", title)
    plot_gradients(grads, depths, out / "gradients.png")
    return results


def _estimate_and_ask(cfg, ds, p: Preset, ask, members: int) -> None:
    """On a CPU the paper preset takes days: time a few steps, print the estimate, ask before starting."""
    import torch

    from .factory import make_model

    net, _, _ = make_model(cfg.model, cfg.overrides, ds.input_shape(cfg.resize), ds.num_classes)
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    x = torch.randn(p.batch_size, *ds.input_shape(cfg.resize))
    y = torch.randint(0, ds.num_classes, (p.batch_size,))
    t = None
    for i in range(4):
        if i == 1:
            t = time.perf_counter()
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    per_step = (time.perf_counter() - t) / 3
    total = per_step * (p.max_steps or p.epochs * (len(ds.train_x) // p.batch_size))
    msg = (f"{cfg.model}: about {per_step:.2f} s a step on this CPU, so its {p.max_steps} steps take about "
           f"{total / 3600:.1f} h, the {members} members some {members * total / 3600:.0f} h or more "
           f"(the paper preset is meant for a GPU).")
    print(msg, flush=True)
    answer = ask(msg) if ask else (input("start anyway? [y/N] ") if __import__("sys").stdin.isatty() else "n")
    if str(answer).strip().lower() not in ("y", "yes"):
        raise UsageError(f"{msg} Not started: pass --yes to train on the CPU anyway, or --device cuda")
