"""`profiles.cache`: a built table group read back from disk is bit for bit the built one; a stale, corrupt or
foreign file is rebuilt, never trusted; a cache that cannot be written leaves the build in use."""
from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pytest

from objectives.profiles import cache
from objectives.profiles.cache import GroupCache
from objectives.profiles.grid import Table


def _group() -> tuple[dict[str, Table], dict[str, np.ndarray]]:
    rng = np.random.default_rng(7)
    v = rng.normal(size=(3, 4))
    return ({"moe.fp8": Table(("shape_key", "num_tokens"), (np.array([1.0, 2.0, 3.0]), np.geomspace(1, 1e3, 4)),
                              v * np.pi, covered=v > 0),
             "moe_bal.fp8": Table(("shape_key", "num_tokens"), (np.array([1.0, 2.0, 3.0]), np.geomspace(1, 1e3, 4)),
                                  v / 3.0)},
            {"moe.fp8": rng.normal(size=(3, 6)), "moe_bal.fp8": np.arange(18, dtype=np.int64).reshape(3, 6)})


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def _store(tmp_path: Path) -> tuple[GroupCache, Path]:
    root = tmp_path / "raw"
    (root / "h200_sxm" / "moe").mkdir(parents=True, exist_ok=True)
    f = root / "h200_sxm" / "moe" / "moe_perf.parquet"
    if not f.exists():
        f.write_bytes(b"rows")
    return GroupCache(root, ("h200_sxm",), "h200_sxm", "vllm", "0.24.0", tmp_path / "cache"), f


def _counted(calls: list[int]):
    def build():
        calls.append(1)
        return _group()
    return build


def test_a_group_read_back_is_the_built_group_bit_for_bit(tmp_path: Path) -> None:
    store, _ = _store(tmp_path)
    calls: list[int] = []
    built = store.get("moe", _counted(calls))
    read = _store(tmp_path)[0].get("moe", _counted(calls))        # another process's cache of the same build
    assert calls == [1]                                            # built once, then read
    assert list(read[0]) == list(built[0]) and list(read[1]) == list(built[1])
    for name, t in built[0].items():
        r = read[0][name]
        assert r.names == t.names and all(_same(a, b) for a, b in zip(r.axes, t.axes))
        assert _same(r.log_ms, t.log_ms)
        assert (r.covered is None) == (t.covered is None)
        assert t.covered is None or _same(np.asarray(r.covered), np.asarray(t.covered))
    for name, k in built[1].items():
        assert _same(read[1][name], k)                             # int64 shape keys stay int64


def test_a_changed_raw_file_or_datasheet_rebuilds_and_drops_the_stale_file(tmp_path: Path) -> None:
    store, f = _store(tmp_path)
    calls: list[int] = []
    store.get("moe", _counted(calls))
    store.get("moe", _counted(calls), extra="h200 4.8 TB/s")        # the GEMM group's datasheet numbers
    assert calls == [1, 1]
    f.write_bytes(b"other rows")                                    # the raw table changed: size and mtime
    os.utime(f, ns=(1, 1))
    again, _ = _store(tmp_path)
    again.get("moe", _counted(calls))
    assert calls == [1, 1, 1]
    files = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert len(files) == 1 and files[0].startswith("h200_sxm__vllm__0.24.0__moe__")   # the stale ones removed
    assert not any(n.endswith(".tmp") for n in files)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "other key"])
def test_a_corrupt_or_foreign_file_is_rebuilt_not_trusted(tmp_path: Path, damage: str) -> None:
    store, _ = _store(tmp_path)
    calls: list[int] = []
    store.get("moe", _counted(calls))
    (path,) = (tmp_path / "cache").iterdir()
    data = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(b"\0" * 64)
    else:                                                           # a file of the same name written for another key
        path.write_bytes(cache._pack(({"gemm.bf16": Table(("m",), (np.array([1.0, 2.0]),), np.zeros(2))}, {}),
                                     "0" * 64))
    got = store.get("moe", _counted(calls))
    assert calls == [1, 1] and list(got[0]) == ["moe.fp8", "moe_bal.fp8"]
    assert _same(cache._unpack(path.read_bytes(), store.key("moe"))[0]["moe.fp8"].log_ms, got[0]["moe.fp8"].log_ms)


def test_an_unwritable_cache_leaves_the_build_in_use(tmp_path: Path) -> None:
    root = tmp_path / "raw"
    root.mkdir()
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    store = GroupCache(root, ("h200_sxm",), "h200_sxm", "vllm", "0.24.0", blocker / "profiles")
    calls: list[int] = []
    assert list(store.get("moe", _counted(calls))[0]) == ["moe.fp8", "moe_bal.fp8"]
    assert list(store.get("moe", _counted(calls))[0]) == ["moe.fp8", "moe_bal.fp8"] and calls == [1, 1]


def test_concurrent_writers_leave_one_whole_file(tmp_path: Path) -> None:
    stores = [_store(tmp_path)[0] for _ in range(8)]
    out: list = [None] * len(stores)

    def go(i: int) -> None:
        out[i] = stores[i].get("moe", _group)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(stores))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    (path,) = (tmp_path / "cache").iterdir()                        # no temporary file left behind
    back = cache._unpack(path.read_bytes(), stores[0].key("moe"))
    assert back is not None and all(_same(o[0]["moe.fp8"].log_ms, back[0]["moe.fp8"].log_ms) for o in out)


def test_where_the_cache_lives(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for off in ("off", "0", "", "none"):
        monkeypatch.setenv("DSE_CACHE_DIR", off)
        assert cache.cache_dir() is None
        assert GroupCache.for_build(tmp_path, ("h200_sxm",), "h200_sxm", "vllm", "0.24.0") is None
    monkeypatch.setenv("DSE_CACHE_DIR", str(tmp_path / "c"))
    assert cache.cache_dir() == tmp_path / "c" / "profiles"
    monkeypatch.delenv("DSE_CACHE_DIR")
    monkeypatch.setattr(cache.sys, "platform", "linux")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.cache_dir() == tmp_path / "xdg" / "dse" / "profiles"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")          # the XDG spec: relative paths are ignored
    assert cache.cache_dir() == Path.home() / ".cache" / "dse" / "profiles"

    def no_home() -> Path:
        raise RuntimeError("Could not determine home directory.")
    monkeypatch.setattr(cache.Path, "home", staticmethod(no_home))     # no HOME, no passwd entry: no cache
    assert cache.cache_dir() is None


def test_a_cached_build_of_the_installed_tables_is_the_fresh_build(monkeypatch: pytest.MonkeyPatch,
                                                                    tmp_path: Path) -> None:
    """The installed aiconfigurator-core's A100 vLLM profile (skipped without it; its tables are the fewest):
    every group written, then read by another build, holds the fresh build's arrays; its hash is the same."""
    from objectives.profiles.build import aiconfigurator_root, build_one
    root = aiconfigurator_root()
    if root is None:
        pytest.skip("aiconfigurator-core not installed")
    monkeypatch.setenv("DSE_CACHE_DIR", str(tmp_path))
    fresh = build_one(root, "a100_sxm", "vllm", "0.14.0", "installed")
    written = build_one(root, "a100_sxm", "vllm", "0.14.0", "installed", cache=True)
    assert fresh is not None and written is not None
    assert written.sha256 == fresh.sha256                          # builds every group, writing each
    groups = sorted(p.name.split("__")[3] for p in (tmp_path / "profiles").iterdir())
    assert groups == sorted(["gemm", "attention", "mla", "dsa", "msa", "dsv4", "mhc", "linear", "comm", "moe"])
    read = build_one(root, "a100_sxm", "vllm", "0.14.0", "installed", cache=True)
    assert read is not None and list(read.tables) == list(fresh.tables)
    for name, t in fresh.tables.items():
        r = read.tables[name]
        assert _same(r.log_ms, t.log_ms) and all(_same(a, b) for a, b in zip(r.axes, t.axes)), name
    assert read.sha256 == fresh.sha256
