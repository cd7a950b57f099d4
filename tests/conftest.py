import pytest


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    """Every test gets its own model cache and report folder; nothing leaks between tests."""
    monkeypatch.setenv("GENLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("GENLAB_REPORT_DIR", str(tmp_path / "report"))
    monkeypatch.setenv("GENLAB_PROGRESS", "0")
    from genlab import data, precision
    data._load_cached.cache_clear()
    # The bf16 probe is remembered per process as well as in the cache: without this, a build in a later test
    # would use an earlier test's answer without writing it to its own cache, its lanes would probe again for
    # themselves, and on a loaded machine they could answer otherwise and retrain what the builder trained.
    precision.cpu_bf16_speedup.cache_clear()
    yield tmp_path


@pytest.fixture
def tiny_build(tmp_path, monkeypatch):
    """A notebooks folder with a tiny 'flows' notebook and a good report already built from it."""
    from genlab import build
    from test_build import tiny_notebook

    notebooks, reports = tmp_path / "nbs", tmp_path / "reports"
    notebooks.mkdir()
    monkeypatch.setattr(build, "NOTEBOOK_DIR", notebooks)
    tiny_notebook(notebooks / "flows.ipynb", 'print("good report")')
    assert build.main(["--notebooks", "flows", "--no-pdf", "--reports", str(reports)]) == 0
    return notebooks, reports
