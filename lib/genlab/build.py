"""Build the reports: execute notebooks with papermill, export HTML and PDF,
write reports/index.html.

Each notebook is built in a staging folder and replaces its previous report
only when everything (execution, HTML, PDF) succeeded; a failure leaves the old
report in place and names the notebook and the cell that failed.

    python -m genlab.build --profile cpu
    python -m genlab.build --profile smoke --notebooks flows --no-pdf
    python -m genlab.build -p seed=1        # any parameter of the notebooks
"""
from __future__ import annotations

import argparse
import ast
import html
import json
import os
import shutil
import sys
import time
from pathlib import Path

from genlab.atomic import save_text
from genlab.config import DEFAULT_PROFILE, PROFILES, get_profile
from genlab.errors import GenlabError
from genlab.notebook import NOTEBOOKS
from genlab.paths import REPO_ROOT

NOTEBOOK_DIR = REPO_ROOT / "notebooks"
TITLES = {"flows": "Normalizing flows (RealNVP)",
          "autoencoders": "Autoencoders (AE, VAE, flow-posterior VAE, β-VAE)",
          "gans": "GANs (vanilla, conditional, feature matching, progressive growing)"}


def pdf_available() -> bool:
    return shutil.which("xelatex") is not None and shutil.which("pandoc") is not None


def parse_params(pairs: list[str]) -> dict:
    """['lr=0.001', 'name=foo'] -> {'lr': 0.001, 'name': 'foo'} (Python literals or strings)."""
    params = {}
    for pair in pairs:
        if "=" not in pair:
            raise GenlabError(f"parameter {pair!r} must look like name=value")
        k, v = pair.split("=", 1)
        try:
            params[k.strip()] = ast.literal_eval(v)
        except (ValueError, SyntaxError):
            params[k.strip()] = v
    return params


def check_params(notebook: Path, params: dict) -> None:
    """Every parameter must be one the notebook's `parameters` cell defines."""
    import papermill

    if not notebook.exists():
        shown = notebook.relative_to(REPO_ROOT) if notebook.is_relative_to(REPO_ROOT) else notebook
        raise GenlabError(f"notebook {notebook} is missing; restore it with git checkout {shown}")
    known = papermill.inspect_notebook(str(notebook))
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise GenlabError(f"unknown parameter(s) {', '.join(unknown)} for {notebook.name}; "
                          f"valid: {', '.join(sorted(known))}")


def _replace_path(new: Path, dest: Path) -> None:
    """Move `new` onto `dest` (file or folder), so that dest is never missing a good copy for long."""
    if new.is_dir():
        old = dest.with_name(f".{dest.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        if dest.exists():
            os.replace(dest, old)
        os.replace(new, dest)
        shutil.rmtree(old, ignore_errors=True)
    else:
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(new, dest)


def _export(executed: Path, out_dir: Path, name: str, pdf: bool) -> None:
    import nbformat
    from nbconvert import HTMLExporter, PDFExporter

    nb = nbformat.read(executed, as_version=4)
    nb.metadata["title"] = f"genlab: {TITLES[name]}"
    body, _ = HTMLExporter().from_notebook_node(nb)
    save_text(body, out_dir / f"{name}.html")
    if pdf:
        try:
            exporter = PDFExporter(template_name="genlab_latex",
                                   extra_template_basedirs=[str(Path(__file__).parent / "templates")])
            body, _ = exporter.from_notebook_node(nb)
        except Exception as e:  # nbconvert's LaTeX errors are long; the first line says enough
            raise GenlabError(f"{name}: PDF export failed ({str(e).strip().splitlines()[0][:200]}); "
                              f"HTML was fine - rerun with --no-pdf to publish without PDF") from e
        (out_dir / f"{name}.pdf").write_bytes(body)


def build_notebook(name: str, profile: str, params: dict, reports: Path, pdf: bool) -> float:
    """Execute and export one notebook, then publish it; returns its wall time."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    source = NOTEBOOK_DIR / f"{name}.ipynb"   # main() has checked it exists and takes `params`
    staging = reports / f".staging-{name}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    env_before = dict(os.environ)
    # The kernel inherits these: outputs go to staging, progress bars stay out of the report,
    # and 'python' in the kernel spec resolves to this environment's interpreter.
    os.environ["GENLAB_REPORT_DIR"] = str(staging)
    os.environ["GENLAB_PROGRESS"] = "0"
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    t0 = time.perf_counter()
    try:
        executed = staging / f"{name}.ipynb"
        try:
            papermill.execute_notebook(
                str(source), str(executed), parameters={"profile": profile, **params},
                kernel_name="python3", cwd=str(NOTEBOOK_DIR), progress_bar=sys.stderr.isatty(),
                request_save_on_cell_execute=False,
            )
        except PapermillExecutionError as e:
            failed = reports / "failed" / f"{name}.ipynb"
            failed.parent.mkdir(parents=True, exist_ok=True)
            if executed.exists():
                shutil.copy(executed, failed)
            shown = failed.relative_to(REPO_ROOT) if failed.is_relative_to(REPO_ROOT) else failed
            last = str(e.evalue).strip().splitlines()
            raise GenlabError(
                f"notebook {name} failed in cell {e.cell_index} (execution count {e.exec_count}): "
                f"{e.ename}: {last[-1] if last else ''}; the previous report is kept; the failed run "
                f"is in {shown}"
            ) from None
        _export(executed, staging, name, pdf)
        # Publish: notebook, HTML, PDF, headline numbers, samples.
        for suffix in (".ipynb", ".html", ".pdf", ".json"):
            if (staging / f"{name}{suffix}").exists():
                _replace_path(staging / f"{name}{suffix}", reports / f"{name}{suffix}")
        if not pdf:
            # An older PDF would no longer match the HTML beside it.
            (reports / f"{name}.pdf").unlink(missing_ok=True)
        if (staging / "samples" / name).exists():
            (reports / "samples").mkdir(exist_ok=True)
            _replace_path(staging / "samples" / name, reports / "samples" / name)
        (reports / "failed" / f"{name}.ipynb").unlink(missing_ok=True)
    finally:
        os.environ.clear()
        os.environ.update(env_before)
        shutil.rmtree(staging, ignore_errors=True)
    return time.perf_counter() - t0


def _fmt(value: float) -> str:
    if value == 0 or 1e-3 <= abs(value) < 1e5:
        return f"{value:.4g}"
    return f"{value:.3e}"


def write_index(reports: Path) -> Path:
    """reports/index.html: links to every report and one table of all headline numbers,
    read from the reports/<notebook>.json files that the notebooks wrote."""
    rows, sections = [], []
    for name in NOTEBOOKS:
        meta_path = reports / f"{name}.json"
        if not meta_path.exists():
            sections.append(f"<li>{html.escape(TITLES[name])}: not built yet</li>")
            continue
        meta = json.loads(meta_path.read_text())
        links = " · ".join(f'<a href="{name}{ext}">{label}</a>' for ext, label in
                           ((".html", "HTML"), (".pdf", "PDF"), (".ipynb", "notebook"))
                           if (reports / f"{name}{ext}").exists())
        sections.append(
            f"<li><b>{html.escape(TITLES[name])}</b>: {links} "
            f"<span class=meta>(profile <code>{html.escape(meta['profile'])}</code>, "
            f"{html.escape(meta.get('device', ''))}, built {html.escape(meta['started_at'])}, "
            f"{meta['wall_time_s'] / 60:.1f} min)</span></li>")
        for h in meta["headlines"]:
            rows.append(
                f"<tr><td>{name}</td><td>{html.escape(h['dataset'])}</td><td>{html.escape(h['metric'])}</td>"
                f"<td class=num>{_fmt(h['value'])}</td><td>{html.escape(h['unit'])}</td>"
                f"<td>{html.escape(h['profile'])}</td></tr>")
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>genlab reports</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; color: #222; }}
table {{ border-collapse: collapse; width: 100%; }}
th, td {{ border-bottom: 1px solid #ddd; padding: .35rem .6rem; text-align: left; }}
th {{ background: #f4f4f4; }} td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
.meta {{ color: #666; font-size: .9em; }}
</style></head><body>
<h1>genlab reports</h1>
<p>Deep generative models trained and measured on MNIST, Fashion-MNIST and CIFAR-10. Every number
below was written by the notebook run that produced it (<code>reports/&lt;notebook&gt;.json</code>).</p>
<ul>{''.join(sections)}</ul>
<h2>Headline numbers</h2>
<table><thead><tr><th>notebook</th><th>dataset</th><th>metric</th><th>value</th><th>unit</th><th>profile</th></tr></thead>
<tbody>{''.join(rows) or '<tr><td colspan=6>no report built yet</td></tr>'}</tbody></table>
</body></html>
"""
    path = reports / "index.html"
    save_text(page, path)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m genlab.build",
        description="Execute genlab's notebooks and build HTML/PDF reports into reports/.")
    parser.add_argument("--profile", default=DEFAULT_PROFILE,
                        help=f"compute profile: {', '.join(PROFILES)} (default {DEFAULT_PROFILE})")
    parser.add_argument("--notebooks", nargs="+", default=list(NOTEBOOKS), metavar="NAME",
                        help=f"which notebooks to build (default: all of {', '.join(NOTEBOOKS)})")
    parser.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                        help="a notebook parameter, e.g. -p seed=1 (repeatable)")
    parser.add_argument("--no-pdf", action="store_true", help="build HTML only")
    parser.add_argument("--reports", type=Path, default=REPO_ROOT / "reports", help="output folder")
    args = parser.parse_args(argv)

    try:
        get_profile(args.profile)
        params = parse_params(args.param)
        if "profile" in params:
            raise GenlabError("give the profile with --profile (or make report PROFILE=...), not -p")
        unknown = [n for n in args.notebooks if n not in NOTEBOOKS]
        if unknown:
            raise GenlabError(f"unknown notebook(s) {', '.join(unknown)}; known: {', '.join(NOTEBOOKS)}")
        for name in args.notebooks:
            check_params(NOTEBOOK_DIR / f"{name}.ipynb", params)
    except GenlabError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    pdf = not args.no_pdf
    if pdf and not pdf_available():
        print("note: xelatex or pandoc not found, building HTML only; for PDF install Debian's "
              "texlive-xetex texlive-fonts-recommended texlive-plain-generic pandoc fonts-dejavu-core "
              "(make pdf-deps does it)", file=sys.stderr)
        pdf = False
    args.reports.mkdir(parents=True, exist_ok=True)
    failures = 0
    for name in args.notebooks:
        print(f"[genlab] building {name} (profile {args.profile}) ...", file=sys.stderr, flush=True)
        try:
            seconds = build_notebook(name, args.profile, params, args.reports, pdf)
            print(f"[genlab] {name}: done in {seconds / 60:.1f} min -> {args.reports / name}.html"
                  + (f", {args.reports / name}.pdf" if pdf else ""), file=sys.stderr, flush=True)
        except GenlabError as e:
            failures += 1
            print(f"error: {e}", file=sys.stderr, flush=True)
    index = write_index(args.reports)
    print(f"[genlab] index: {index}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
