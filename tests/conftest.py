import pytest


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    """Every test gets its own model cache and report folder; nothing leaks between tests."""
    monkeypatch.setenv("GENLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("GENLAB_REPORT_DIR", str(tmp_path / "report"))
    monkeypatch.setenv("GENLAB_PROGRESS", "0")
    from genlab import data
    data._load_cached.cache_clear()
    yield tmp_path
