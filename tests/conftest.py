import pytest

from levrt.store import Store, default_url


@pytest.fixture(autouse=True)
def lev_home(tmp_path, monkeypatch):
    """Every test gets its own store; nothing touches the user's data directory."""
    home = tmp_path / "lev-home"
    monkeypatch.setenv("LEV_HOME", str(home))
    monkeypatch.delenv("LEV_DB_URL", raising=False)
    monkeypatch.delenv("LEV_EXECUTOR", raising=False)
    # The server's tasks run their tools as processes, whatever engine answers here: the
    # tests' tools name images no engine has. A test of the default sets it back.
    monkeypatch.setenv("LEV_SERVER_EXECUTOR", "process")
    return home


@pytest.fixture
def store(lev_home):
    """The default store of this test's LEV_HOME: the one lev serve, lev run and the server's
    tasks use. (Store tests define their own.)"""
    with Store(default_url()) as opened:
        yield opened
