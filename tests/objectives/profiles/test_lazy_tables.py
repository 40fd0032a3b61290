"""`profiles.profile.TableGroups` / `LazyTables`: a profile's table groups built on the first lookup of a name they
own, the same tables an eager build holds."""
from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pytest

from objectives.profiles.grid import Table
from objectives.profiles.profile import KernelProfile, LazyTables, TableGroups


def _table(v: float) -> Table:
    return Table(("m",), (np.array([1.0, 2.0]),), np.full(2, v))


def _profile(built: list[str]) -> KernelProfile:
    def group(tag: str, tables: dict[str, float], keys: dict[str, float] | None = None):
        def build():
            built.append(tag)
            return ({k: _table(v) for k, v in tables.items()},
                    {k: np.array([[v, v]]) for k, v in (keys or {}).items()})
        return build

    groups = TableGroups({"gemm.bf16": _table(0.0)}, {}, [
        (("context_attention", "generation_attention"), group("attn", {"context_attention.bf16": 1.0,
                                                                       "generation_attention.bf16": 2.0})),
        (("comm",), group("comm", {"comm.nccl_all_reduce": 3.0})),
        (("moe", "moe_bal", "moe_deepep_"), group("moe", {"moe.bf16": 4.0, "moe_bal.bf16": 5.0,
                                                          "moe_deepep_ll.bf16": 6.0},
                                                  {"moe.bf16": 4.0, "moe_deepep_ll.bf16": 6.0})),
    ])
    return KernelProfile("h200_sxm", "vllm", "0.0", "test", LazyTables(groups, "tables"), LazyTables(groups, "keys"))


def test_a_lookup_builds_only_the_group_that_owns_the_name() -> None:
    built: list[str] = []
    p = _profile(built)
    assert p.table("gemm.bf16") is not None and built == []          # built eagerly
    assert p.tables["generation_attention.bf16"].log_ms[0] == 2.0 and built == ["attn"]
    assert p.table("context_attention.fp8") is None and built == ["attn"]   # its group built, no such table
    assert p.table("mla_context.bf16") is None and built == ["attn"]      # no group owns the family
    assert p.shape_index("moe_deepep_ll.bf16", np.array([[6.0, 6.0], [1.0, 1.0]])).tolist() == [1, 0]
    assert built == ["attn", "moe"]                                        # the prefix "moe_deepep_" owns it
    assert "comm.nccl_all_reduce" in p.tables and built == ["attn", "moe", "comm"]
    p.table("moe_bal.bf16")
    assert built == ["attn", "moe", "comm"]                                # each group once


def test_iteration_pickling_and_the_hash_see_every_group() -> None:
    built: list[str] = []
    p = _profile(built)
    names = sorted(p.tables)
    assert names == ["comm.nccl_all_reduce", "context_attention.bf16", "gemm.bf16", "generation_attention.bf16",
                     "moe.bf16", "moe_bal.bf16", "moe_deepep_ll.bf16"]
    assert sorted(built) == ["attn", "comm", "moe"] and len(p.keys) == 2
    eager = KernelProfile("h200_sxm", "vllm", "0.0", "test", dict(p.tables), dict(p.keys))
    assert _profile([]).sha256 == eager.sha256
    back = pickle.loads(pickle.dumps(_profile([]).tables))
    assert type(back) is dict and sorted(back) == names


def test_setting_or_deleting_an_entry_builds_its_group_first() -> None:
    built: list[str] = []
    p = _profile(built)
    tables = p.tables
    assert isinstance(tables, LazyTables)
    tables["moe.bf16"] = _table(9.0)
    assert built == ["moe"] and p.tables["moe.bf16"].log_ms[0] == 9.0       # not overwritten by the group's build
    del tables["comm.nccl_all_reduce"]
    assert built == ["moe", "comm"] and p.table("comm.nccl_all_reduce") is None
    with pytest.raises(KeyError):
        p.tables["dsa_context.bf16"]


def test_a_built_profile_of_a_dense_model_builds_no_moe_group(monkeypatch: pytest.MonkeyPatch) -> None:
    """The installed aiconfigurator-core's tables (skipped without it): a dense model's estimate reads GEMM,
    attention and collective tables, never the MoE group's, and the lazy profile prices it as the eager one."""
    from objectives import inference, profiles
    from objectives.profiles.build import aiconfigurator_root, build_one
    root = aiconfigurator_root()
    if root is None:
        pytest.skip("aiconfigurator-core not installed")
    p = build_one(root, "h200_sxm", "vllm", "0.24.0", "installed")
    assert p is not None
    groups = p.tables._groups                  # type: ignore[attr-defined]

    def moe_pending() -> bool:
        return any("moe" in fams for fams, _ in groups._pending)

    monkeypatch.setattr(profiles, "load", lambda *a, **k: p)
    kw: dict[str, Any] = dict(tp=4, batch_size=8, input_len=2048, output_len=64, engine="vllm")
    lazy = inference.estimate("Llama-3.1-70B", "H200-SXM-141GB", **kw)
    assert (lazy["source"] == "interpolated").all() and moe_pending()
    eager = KernelProfile(p.system, p.engine, p.version, p.source, dict(p.tables), dict(p.keys))
    assert not moe_pending()
    monkeypatch.setattr(profiles, "load", lambda *a, **k: eager)
    again = inference.estimate("Llama-3.1-70B", "H200-SXM-141GB", **kw)
    for col in ("ttft_ms", "tpot_ms", "throughput_tok_s"):
        assert again[col].tolist() == lazy[col].tolist()


def test_threads_sharing_a_profile_build_each_group_once() -> None:
    # a threaded Dask worker or a trial thread pool shares one profile: concurrent first lookups of different
    # groups must neither build a group twice nor drop another thread's pending group
    import threading
    import time

    built: list[str] = []
    p = _profile(built)
    slow = p.tables._groups._pending      # type: ignore[attr-defined]
    slowed = []
    for families, build in slow:
        def wrapped(build=build):
            time.sleep(0.02)              # widen the window a race needs
            return build()
        slowed.append((families, wrapped))
    p.tables._groups._pending = slowed    # type: ignore[attr-defined]
    names = ["generation_attention.bf16", "comm.nccl_all_reduce", "moe.bf16"] * 4
    got: list[Any] = [None] * len(names)

    def look(i: int) -> None:
        got[i] = p.tables[names[i]].log_ms[0]

    threads = [threading.Thread(target=look, args=(i,)) for i in range(len(names))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == [2.0, 3.0, 4.0] * 4
    assert sorted(built) == ["attn", "comm", "moe"]
