"""Looking at finished runs: ``convlab compare`` (a table and overlaid curves) and ``convlab report``
(one self-contained HTML page per run)."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import yaml

from .errors import UsageError


def read_run(path: str | Path) -> dict:
    """A run directory's config, metrics and summary totals."""
    p = Path(path)
    if not (p / "metrics.jsonl").is_file():
        raise UsageError(f"{p}: not a run directory (no metrics.jsonl); runs live under runs/ by default")
    metrics = [json.loads(line) for line in (p / "metrics.jsonl").read_text().splitlines() if line.strip()]
    config = yaml.safe_load((p / "config.yaml").read_text()) if (p / "config.yaml").is_file() else {}
    totals = {}
    if (p / "summary.json").is_file():
        totals = json.loads((p / "summary.json").read_text()).get("totals", {})
    evals = [m for m in metrics if m.get("test_acc") is not None]
    best = max(evals, key=lambda m: m["test_acc"], default=None)
    return {
        "run": str(p), "name": p.name, "model": config.get("model"), "data": config.get("data"),
        "epochs": len(metrics), "params": totals.get("trainable_params"), "macs": totals.get("macs"),
        "final_test_acc": evals[-1]["test_acc"] if evals else None,
        "best_test_acc": best["test_acc"] if best else None, "best_epoch": best["epoch"] if best else None,
        "final_train_loss": metrics[-1]["train_loss"] if metrics else None,
        "wall_s": metrics[-1]["wall_s"] if metrics else None,
        "images_per_s": (sum(m["images_per_s"] or 0 for m in metrics) / len(metrics)) if metrics else None,
        "metrics": metrics, "config": config,
    }


def compare(runs: list[str], plot: str | Path | None = None) -> list[dict]:
    """Read several runs; optionally draw their test accuracy and train loss on shared axes."""
    if len(runs) < 1:
        raise UsageError("compare needs at least one run directory")
    rows = [read_run(r) for r in runs]
    if plot:
        from .viz import _plt

        plt = _plt()
        fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
        for r in rows:
            ms = r["metrics"]
            label = f"{r['name']} ({r['model'][:30]})" if r["model"] else r["name"]
            a.plot([m["epoch"] for m in ms], [m["train_loss"] for m in ms], "o-", label=label)
            ev = [m for m in ms if m.get("test_acc") is not None]
            b.plot([m["epoch"] for m in ev], [100 * m["test_acc"] for m in ev], "s-", label=label)
        from .viz import _style, save

        for ax, ylabel, title in ((a, "cross-entropy", "train loss"), (b, "accuracy (%)", "test accuracy")):
            _style(ax, ylabel, title)
        save(fig, plot)
    return rows


def _img(path: Path) -> str:
    if not path.is_file():
        return ""
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(path.name)}" src="data:image/png;base64,{data}">'


def report(run: str | Path, out: str | Path | None = None) -> Path:
    """Write ``report.html`` in the run directory: config, model, summary, metrics and plots in one file."""
    r = read_run(run)
    p = Path(run)
    if not (p / "curves.png").is_file() and r["metrics"]:
        from .viz import plot_curves

        plot_curves(r["metrics"], p / "curves.png", title=p.name)
    esc = html.escape
    cfg_rows = "".join(f"<tr><th>{esc(str(k))}</th><td>{esc(str(v))}</td></tr>" for k, v in r["config"].items())
    keys = ["epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "images_per_s", "epoch_s", "wall_s"]

    def cell(v):
        if v is None:
            return "–"
        if isinstance(v, float):
            return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.4g}"
        return str(v)

    def pct(v):
        return "–" if v is None else f"{100 * v:.2f}%"

    met_rows = "".join("<tr>" + "".join(f"<td>{cell(m.get(k))}</td>" for k in keys) + "</tr>" for m in r["metrics"])
    summary = (p / "summary.txt").read_text() if (p / "summary.txt").is_file() else ""
    spec = (p / "model.spec").read_text().strip() if (p / "model.spec").is_file() else ""
    acc = pct(r["final_test_acc"])
    confusions = "".join(_img(c) for c in sorted(p.glob("confusion-*.png")))
    inside = "".join(_img(c) for c in sorted(p.glob("filters-*.png")) + sorted(p.glob("maps-*.png")))
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{esc(p.name)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}th{{text-align:left;background:#f4f4f4}}
pre{{background:#f8f8f8;padding:1em;overflow-x:auto;font-size:12px}}img{{max-width:100%}}</style></head><body>
<h1>{esc(p.name)}</h1>
<p><b>{esc(str(r['model']))}</b> on <b>{esc(str(r['data']))}</b>: test accuracy <b>{acc}</b> after {r['epochs']}
epoch(s) (best {pct(r['best_test_acc'])} at epoch {cell(r['best_epoch'])}), {cell(r['wall_s'])} s.</p>
{_img(p / 'curves.png')}
<h2>Metrics</h2><table><tr>{''.join(f'<th>{k}</th>' for k in keys)}</tr>{met_rows}</table>
{('<h2>Evaluation</h2>' + confusions) if confusions else ''}
{('<h2>Inside the model</h2><p>drawn by <code>convlab viz</code></p>' + inside) if inside else ''}
<h2>Model</h2>{f'<pre>{esc(spec)}</pre>' if spec else ''}<pre>{esc(summary)}</pre>
<h2>Config</h2><table>{cfg_rows}</table>
</body></html>"""
    target = Path(out) if out else p / "report.html"
    target.write_text(page)
    return target
