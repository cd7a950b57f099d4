"""Helpers a notebook calls: set-up, headline numbers, saved samples, display.

Every number a report states goes through here: `Report.headline()` writes it to
`<report dir>/<notebook>.json` (the index reads it from there), and
`Report.say()` renders prose built from computed variables as Markdown.
"""
from __future__ import annotations

import datetime as _dt
import numbers
import os
import time
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd
import torch
from IPython.display import Markdown, display

from genlab import data as gdata
from genlab.atomic import save_json, save_torch
from genlab.cache import notebook_model_code
from genlab.config import DEFAULT_PROFILE, NOTEBOOK_BUDGET, Profile, apply_params, describe_changes, knob_names
from genlab.errors import GenlabError
from genlab.metrics import keep_measured_samples, yardstick
from genlab.paths import report_dir
from genlab.plots import plot_history, show, show_grid

NOTEBOOKS = tuple(NOTEBOOK_BUDGET)
# Said at the end of a smoke-profile report's discussion.
SMOKE_NOTE = "*This is the `smoke` profile: tiny models trained for seconds; the numbers only show that the pipeline runs.*"


class Report:
    """The state of one notebook run: its profile (with the run's parameter overrides
    applied), clock and headline numbers."""

    def __init__(self, notebook: str, profile: str | Profile, **params: Any):
        if notebook not in NOTEBOOKS:
            raise GenlabError(f"unknown notebook {notebook!r}; known: {', '.join(NOTEBOOKS)}")
        self.notebook = notebook
        self.profile, self.changed = apply_params(profile, notebook, params)
        self.params = {"profile": self.profile.name, **self.changed}
        # The builder names a run with non-default parameters; by hand in Jupyter it is "lab".
        self.run_name = os.environ.get("GENLAB_RUN_NAME", "lab")
        self.started = time.perf_counter()
        self.started_at = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        self.headlines: list[dict] = []
        # The code of the models this run trains, as it started (genlab.build's estimates compare the next build's).
        self.model_code = notebook_model_code(notebook)
        self.dir = report_dir()
        torch.manual_seed(self.profile.seed)
        plt.rcParams.update({"figure.dpi": 110, "savefig.dpi": 110, "font.size": 9})
        pd.set_option("display.precision", 4)
        keep_measured_samples(self.save_samples)
        self.say(f"*Run `{self.run_name}`: profile `{self.profile.name}` on `{self.profile.device}`, "
                 f"changed: {describe_changes(self.changed)}.*")

    @classmethod
    def from_parameters(cls, notebook: str, namespace: dict) -> "Report":
        """The Report of a notebook whose `parameters` cell defined its knobs in `namespace`
        (None = the profile's value)."""
        names = [n for n in knob_names(notebook) if n in namespace]
        return cls(notebook, namespace.get("profile", DEFAULT_PROFILE), **{n: namespace[n] for n in names})
    @property
    def wall_time(self) -> float:
        return time.perf_counter() - self.started

    # --- numbers ---------------------------------------------------------------------
    def headline(self, metric: str, value: float, unit: str = "", dataset: str = "") -> float:
        """Record one headline number; rewrites `<notebook>.json` atomically."""
        self.headlines = [h for h in self.headlines if (h["metric"], h["dataset"]) != (metric, dataset)]
        self.headlines.append({"metric": metric, "value": float(value), "unit": unit,
                               "dataset": dataset, "profile": self.profile.name,
                               "wall_time_s": round(self.wall_time, 1)})
        self.save()
        return value

    def save(self) -> Path:
        path = self.dir / f"{self.notebook}.json"
        save_json({"notebook": self.notebook, "profile": self.profile.name, "params": self.params,
                   "run": self.run_name, "changed": describe_changes(self.changed),
                   "started_at": self.started_at, "wall_time_s": round(self.wall_time, 1),
                   "device": str(self.profile.device), "threads": torch.get_num_threads(),
                   "model_code": self.model_code, "headlines": self.headlines}, path)
        return path

    def save_samples(self, name: str, images: torch.Tensor, config: dict | None = None) -> Path:
        """Keep a shown grid as a uint8 tensor with what generated it, for re-measuring."""
        if images.dtype != torch.uint8:
            raise GenlabError(f"samples {name!r} must be uint8 images, got {images.dtype}")
        path = self.dir / "samples" / self.notebook / f"{name}.pt"
        save_torch({"images": images.detach().cpu(), "config": config or {},
                    "profile": self.profile.name, "notebook": self.notebook}, path)
        return path

    # --- display ---------------------------------------------------------------------
    @staticmethod
    def say(text: str) -> None:
        """Render Markdown (build it from computed values with f-strings)."""
        display(Markdown(text))

    @staticmethod
    def table(df: pd.DataFrame, floatfmt: str = ".4g", index: bool = False) -> None:
        """A table as Markdown (HTML, Jupyter) and as LaTeX that always fits the PDF page."""
        if index:
            df = df.reset_index()
        # A literal '|' (as in p(x|z)) would end a cell of a pipe table.
        md = df.rename(columns=lambda c: str(c).replace("|", "\\|"))
        md = md.map(lambda v: v.replace("|", "\\|") if isinstance(v, str) else v)
        display({"text/markdown": md.to_markdown(index=False, floatfmt=floatfmt),
                 "text/latex": latex_table(df, floatfmt)}, raw=True)

    def grid(self, name: str, images: torch.Tensor, title: str, nrow: int = 8,
             config: dict | None = None) -> None:
        """Show a grid of uint8 images and save them as samples/<notebook>/<name>.pt."""
        self.save_samples(name, images, config)
        show(show_grid(images, title, nrow=nrow))

    def finish(self) -> None:
        self.save()
        self.say(f"*Notebook `{self.notebook}` ran with profile `{self.profile.name}` on "
                 f"`{self.profile.device}` in {self.wall_time / 60:.1f} minutes.*")


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def _latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def _latex_header(name: str, width: int = 12) -> str:
    """A column header broken at spaces into lines of about `width` characters."""
    lines, line = [], ""
    for word in str(name).split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    lines.append(line)
    cells = r" \\ ".join(_latex_escape(x) for x in lines)
    return r"\begin{tabular}[b]{@{}c@{}}" + cells + r"\end{tabular}"


def latex_table(df: pd.DataFrame, floatfmt: str = ".4g") -> str:
    """`df` as a booktabs tabular: headers wrapped, numbers and short texts never wrapped, scaled
    down to the text width when it is wider than the page."""
    def cell(v, wraps: bool):
        if isinstance(v, bool) or v is None:
            return _latex_escape(str(v))
        if isinstance(v, float):
            return "" if v != v else format(v, floatfmt)
        if isinstance(v, numbers.Integral):
            return str(v)
        # In a fixed-width column every text may wrap: an unbreakable one would run into the next column.
        return _latex_escape(str(v)) if wraps else r"\mbox{" + _latex_escape(str(v)) + "}"
    numeric = [pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c]) for c in df.columns]
    # Long texts (an architecture, a list of stabilisers) wrap in a fixed-width column instead of
    # stretching the table until it has to be shrunk to an unreadable size.
    long_text = [not n and df[c].astype(str).str.len().max() > 30 for c, n in zip(df.columns, numeric)]
    spec = "".join(r">{\raggedright\arraybackslash}p{3.6cm}" if w else ("r" if n else "l")
                   for n, w in zip(numeric, long_text))
    rows = [" & ".join(_latex_header(c) for c in df.columns) + r" \\ \midrule"]
    rows += [" & ".join(cell(v, w) for v, w in zip(r, long_text)) + r" \\" for r in df.itertuples(index=False)]
    body = "\n".join(rows)
    return ("\\begin{center}\\footnotesize\\setlength{\\tabcolsep}{4pt}%\n"
            "\\sbox0{\\begin{tabular}{" + spec + "}\\toprule\n" + body + "\n\\bottomrule\\end{tabular}}%\n"
            "\\ifdim\\wd0>\\linewidth\\resizebox{\\linewidth}{!}{\\usebox0}\\else\\usebox0\\fi\n"
            "\\end{center}")


def dataset_overview(report: Report, dataset: str) -> dict:
    """Show real images beside the learning curve of the dataset's classifier, and
    measure the classifier: test accuracy and the real-data FID floor. Returns a table row."""
    ds = gdata.load(dataset)
    k = len(ds.classes)
    per_class = max(1, report.profile.grid_images // k)
    # Column c holds the first test images of class c, so every class is shown.
    firsts = [torch.nonzero(ds.y_test == c)[:per_class, 0] for c in range(k)]
    idx = torch.stack(firsts, 1).flatten()
    report.save_samples(f"real_{ds.name}", ds.x_test[idx],
                        {"source": f"{ds.name} test set", "indices": idx.tolist()})
    ys = yardstick(ds.name, report.profile.name)
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2), gridspec_kw={"width_ratios": [1.4, 1]})
    show_grid(ds.x_test[idx], f"{ds.title}: real test images, one column per class", nrow=k, ax=left)
    plot_history(ys.fit_result.history, ["train_accuracy", "val_accuracy"],
                 title=f"{ds.title} classifier", ylabel="accuracy", ax=right)
    show(fig)
    report.headline("classifier test accuracy", ys.test_accuracy, "fraction", ds.name)
    report.headline("FID real floor", ys.fid_floor, "FID", ds.name)
    return {
        "dataset": ds.title,
        "test accuracy": ys.test_accuracy,
        "epochs": int(ys.fit_result.history["epoch"].max()),
        "train time (s)": round(ys.fit_result.train_seconds, 1),
        "from cache": ys.fit_result.cached,
        "FID floor": ys.fid_floor,
        "FID images": min(report.profile.fid_samples, len(ds.x_test)),
        "reference images": ys.n_reference,
    }


def yardstick_section(report: Report, datasets: list[str]) -> pd.DataFrame:
    """Overview of each dataset and its classifier, then one table of them all."""
    rows = [dataset_overview(report, ds) for ds in datasets]
    table = pd.DataFrame(rows)
    report.table(table)
    return table


def yardstick_discussion(report: Report, table: pd.DataFrame) -> None:
    """Prose about the yardsticks, written from the measured table."""
    lines = []
    for row in table.to_dict("records"):
        ds, acc = row["dataset"], row["test accuracy"]
        target = gdata.SPECS[gdata.canonical_name(ds)].classifier_target
        verdict = "meets" if acc >= target else "falls short of"
        lines.append(
            f"- **{ds}**: the classifier reaches {acc:.2%} test accuracy after "
            f"{row['epochs']} epochs ({row['train time (s)']:.0f} s of training), "
            f"which {verdict} the {target:.0%} aim. The FID of {row['FID images']} held-out real test "
            f"images against the training-set reference is {row['FID floor']:.3g}: no model's samples "
            f"can be expected to score lower with this many images.")
    if report.profile.name == "smoke":
        lines.append("- This is the `smoke` profile: tiny classifiers on a few thousand images, so these "
                     "numbers only show that the pipeline runs; build with `PROFILE=cpu` or `gpu` for "
                     "meaningful values.")
    report.say("\n".join(lines))
