"""Finished runs: a trained model loaded back (``load_run``), one image predicted (``predict``,
for ``convlab viz``), a split evaluated (``convlab eval``), runs compared (``convlab compare``) and
one HTML page per run (``convlab report``). Where each file lives is :class:`RunDir`'s."""

from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import UsageError
from ..fileio import write_text
from .config import TrainConfig
from .rundir import METRIC_KEYS, RunDir

if TYPE_CHECKING:  # compare and report read files only: they do not import torch
    import torch

__all__ = ["LoadedRun", "Prediction", "compare", "evaluate_run", "load_run", "predict", "probabilities", "report"]


@dataclass
class LoadedRun:
    """A trained model back from its run directory or checkpoint, with its data and config."""

    model: torch.nn.Module
    cfg: TrainConfig
    ds: object
    checkpoint: Path
    run_dir: Path
    device: torch.device

    def split(self, name: str):
        """(images, labels) of the ``test`` or ``train`` split, as stored (uint8 images)."""
        return (self.ds.test_x, self.ds.test_y) if name == "test" else (self.ds.train_x, self.ds.train_y)


def load_run(run: str, data: str | None = None, data_dir: str | None = None, device: str = "auto",
             model=None) -> LoadedRun:
    """The model of a run directory (its best.pt, else last.pt) or of a checkpoint file, in eval mode.

    The model is rebuilt from the spec text the checkpoint recorded; nothing named in the run is imported.
    A run of a Python model needs ``model``: its ``package.module:attr`` named again (``--model`` on the
    command line), or the nn.Module itself."""
    from ..data import load
    from .checkpoint import checkpoint_config, load_checkpoint, model_source
    from .device import pick_device
    from ..factory import make_model

    path = Path(run)
    if path.is_dir():
        ckpt, run_dir = RunDir(path).checkpoint, path
    else:
        ckpt, run_dir = path, path.parent
    if not ckpt.is_file():
        raise UsageError(f"{run}: no checkpoint (expected a run directory with best.pt/last.pt, or a .pt file)")
    state = load_checkpoint(ckpt)
    cfg = checkpoint_config(state, ckpt)
    source = model_source(state, cfg, ckpt, named=model)
    ds = load(data or cfg.data, data_dir or cfg.data_dir)
    dev = pick_device(device)
    net, _, _ = make_model(source, None, ds.input_shape(cfg.resize), ds.num_classes)
    _load_weights(net, state["model"], ckpt, cfg.model, f"on {ds.name}")
    net.to(dev).eval()
    return LoadedRun(net, cfg, ds, ckpt, run_dir, dev)


def _load_weights(net, weights: dict, ckpt: Path, label: str, where: str = "") -> None:
    """``weights`` into ``net``; a RunError naming the checkpoint and the keys or shapes that do not fit."""
    from ..errors import RunError

    try:
        net.load_state_dict(weights)
    except RuntimeError as e:
        lines = [ln.strip() for ln in str(e).splitlines()[1:] if ln.strip()]
        detail = "; ".join(lines)[:300] or str(e).splitlines()[0]
        raise RunError(f"{ckpt}: its weights do not fit the model {label[:80]!r}{' ' + where if where else ''} "
                       f"({detail}); the model must be the one the run was trained with") from None


@dataclass
class Prediction:
    """What a loaded model says about one image of a split."""

    split: str
    index: int
    input: torch.Tensor   # the image as the model saw it: normalised (and resized), [C, H, W]
    image: torch.Tensor   # the stored image, as float, for showing
    label: int            # the true class
    pred: int             # the predicted class
    probs: torch.Tensor   # class probabilities (softmax; (1 − σ, σ) for a binary head), on the CPU

    @property
    def confidence(self) -> float:
        return float(self.probs[self.pred])


def probabilities(model, x) -> torch.Tensor:
    """(N, K) class probabilities of images ``x`` (N, C, H, W) on the CPU, in evaluation mode: the softmax
    of the scores, or (1 − σ(z), σ(z)) for a one-logit (binary) model — see :mod:`convlab.training.head`."""
    import torch

    from .head import probabilities as from_scores, scores_of

    was = model.training
    model.eval()
    try:
        p = next(model.parameters(), None)
        x = x.to(p.device, p.dtype) if p is not None else x
        with torch.no_grad():
            return from_scores(scores_of(model, x)).cpu()
    finally:
        model.train(was)


def predict(r: LoadedRun, index: int, split: str = "test") -> Prediction:
    """The model's prediction for image ``index`` of ``split``, normalised as in training."""
    import torch

    from ..data import Batcher

    x, y = r.split(split)
    if not 0 <= index < len(x):
        raise UsageError(f"--index {index} is outside the {split} split (0..{len(x) - 1})")
    one = Batcher(x, y, r.ds.mean, r.ds.std, batch_size=1, resize=r.cfg.resize).make_batch(torch.tensor([index]))[0]
    probs = probabilities(r.model, one.unsqueeze(0))[0]
    return Prediction(split, index, one, x[index].float(), int(y[index]), int(probs.argmax()), probs)


def evaluate_run(run: str, data: str | None = None, data_dir: str | None = None, split: str = "test",
                 device: str = "auto", out: str | None = None, model=None) -> dict:
    """Accuracy, per-class accuracy and the confusion matrix of a run (or checkpoint) on a split;
    the matrix drawn as confusion-SPLIT.png and everything saved as eval-SPLIT.json, in ``out`` or
    the run directory."""
    import torch

    from ..data import Batcher
    from ..viz import plot_confusion
    from .head import predictions, scores_of

    r = load_run(run, data, data_dir, device, model=model)
    model, cfg, ds, ckpt, dev = r.model, r.cfg, r.ds, r.checkpoint, r.device
    x, y = r.split(split)
    batches = Batcher(x, y, ds.mean, ds.std, batch_size=512, device=dev, resize=cfg.resize)
    n = ds.num_classes
    confusion = torch.zeros(n, n, dtype=torch.long)
    with torch.no_grad():
        for xb, yb in batches:
            scores = scores_of(model, xb)
            if cfg.test_flip:  # as the run scored its test split: each image and its mirror image
                scores = (scores + scores_of(model, xb.flip(-1))) / 2
            pred = predictions(scores)
            confusion += torch.bincount((yb * n + pred).cpu(), minlength=n * n).view(n, n)
    total = int(confusion.sum())
    per_class = (confusion.diag().float() / confusion.sum(1).clamp(min=1).float()).tolist()
    target = RunDir(Path(out) if out else r.run_dir)
    target.path.mkdir(parents=True, exist_ok=True)
    result = {"model": cfg.model, "data": ds.name, "split": split, "checkpoint": str(ckpt), "n": total,
              "accuracy": float(confusion.diag().sum()) / max(total, 1), "classes": ds.classes,
              "test_flip": bool(cfg.test_flip), "per_class_accuracy": per_class, "confusion": confusion.tolist(),
              "confusion_png": str(target.confusion_png(split)), "json": str(target.eval_json(split))}
    plot_confusion(confusion.numpy(), ds.classes, target.confusion_png(split),
                   title=f"{cfg.model} on {ds.name} ({split}): {100 * result['accuracy']:.2f}%")
    write_text(target.eval_json(split), json.dumps(result, indent=2))
    return result


def compare(runs: list[str], plot: str | Path | None = None, metric: str | None = None) -> list[dict]:
    """Read several runs (see :meth:`RunDir.read`), each with its ``final_train_error`` (the end of the
    per-step curve where the run logged steps, else the last epoch's); optionally draw them on shared
    axes: test accuracy and train loss per epoch, or one ``metric`` (train_error | test_error | loss),
    per iteration where the runs logged their steps."""
    from ..viz import COMPARE_METRICS

    if len(runs) < 1:
        raise UsageError("compare needs at least one run directory")
    if metric is not None and metric not in COMPARE_METRICS:
        raise UsageError(f"--metric {metric!r}: choose one of {', '.join(COMPARE_METRICS)}")
    rows = [RunDir(r).read() for r in runs]
    steps = [RunDir(r).read_steps() for r in runs]
    for r, st in zip(rows, steps):
        from ..experiment import final_train_error

        last = r["metrics"][-1] if r["metrics"] else None
        r["final_train_error"] = (final_train_error(st) if st else
                                  1 - last["train_acc"] if last and last.get("train_acc") is not None else None)
    if plot:
        from ..viz import plot_compare

        plot_compare([(f"{r['name']} ({r['model'][:30]})" if r["model"] else r["name"], r["metrics"], st)
                      for r, st in zip(rows, steps)], plot, metric)
    return rows


def _img(path: Path) -> str:
    if not path.is_file():
        return ""
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(path.name)}" src="data:image/png;base64,{data}">'


def report(run: str | Path, out: str | Path | None = None) -> Path:
    """Write ``report.html`` in the run directory: config, model, summary, metrics and plots in one file."""
    rd = RunDir(run)
    r = rd.read()
    p = rd.path
    if not rd.curves.is_file() and r["metrics"]:
        rd.plot(r["metrics"])
    esc = html.escape
    cfg_rows = "".join(f"<tr><th>{esc(str(k))}</th><td>{esc(str(v))}</td></tr>" for k, v in r["config"].items())

    def cell(v):
        if v is None:
            return "–"
        if isinstance(v, float):
            return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.4g}"
        return esc(str(v))  # every value read from the run's files is escaped

    def pct(v):
        return "–" if v is None else f"{100 * v:.2f}%"

    met_rows = "".join("<tr>" + "".join(f"<td>{cell(m.get(k))}</td>" for k in METRIC_KEYS) + "</tr>"
                       for m in r["metrics"])
    summary = rd.read_text("summary.txt")
    spec = rd.read_text("model.spec").strip()
    acc = pct(r["final_test_acc"])
    out_shape = rd.read_output_shape()
    head = ("<p>Head: <b>binary head</b>, one logit z per image, trained with binary cross-entropy on z; "
            "p(class 1) = σ(z), predicted class 1 when p &gt; 0.5. The losses below are binary cross-entropy.</p>"
            if out_shape and out_shape[-1] == 1 else "")
    confusions = "".join(_img(c) for c in rd.pictures("confusion"))
    inside = "".join(_img(c) for c in rd.pictures("filters") + rd.pictures("maps"))
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{esc(p.name)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}th{{text-align:left;background:#f4f4f4}}
pre{{background:#f8f8f8;padding:1em;overflow-x:auto;font-size:12px}}img{{max-width:100%}}</style></head><body>
<h1>{esc(p.name)}</h1>
<p><b>{esc(str(r['model']))}</b> on <b>{esc(str(r['data']))}</b>: test accuracy <b>{acc}</b> after {r['epochs']}
epoch(s) (best {pct(r['best_test_acc'])} at epoch {cell(r['best_epoch'])}), {cell(r['wall_s'])} s.</p>
{head}
{_img(rd.curves)}
<h2>Metrics</h2><table><tr>{''.join(f'<th>{k}</th>' for k in METRIC_KEYS)}</tr>{met_rows}</table>
<h2>Evaluation</h2>{confusions or f'<p>Not evaluated yet: <code>convlab eval {esc(str(p))}</code> writes the per-class '
                 f'accuracy and the confusion matrix, then <code>convlab report {esc(str(p))}</code> again puts them '
                 f'here.</p>'}
{('<h2>Inside the model</h2><p>drawn by <code>convlab viz</code></p>' + inside) if inside else ''}
<h2>Model</h2>{f'<pre>{esc(spec)}</pre>' if spec else ''}<pre>{esc(summary)}</pre>
<h2>Config</h2><table>{cfg_rows}</table>
</body></html>"""
    target = Path(out) if out else p / "report.html"
    write_text(target, page)
    return target
