"""`KernelProfile`: measured latency tables of one (GPU system, serving engine, engine version), and where they live.

Profiles ship compact under objectives/data/profiles/ (derived from aiconfigurator-core, see NOTICE); with the
`profiles` extra installed, `load(..., full=True)` (the default then) builds them from the package's full tables.
The `torch` engine is PyTorch's own kernels (cuBLAS GEMMs, SDPA attention) as `objectives.profiles.collect`
measures them on a GPU: the H200 one ships, built from the raw tables under objectives/data/profiles/collected/.
"""
from __future__ import annotations

import functools
import hashlib
import io
import json
import re
import threading
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .grid import Table

DATA_DIR = Path(__file__).resolve().parent.parent / "data" / "profiles"

#: catalog GPU name -> the system name the kernel tables use (only GPUs whose tables were measured on that exact
#: part; an H100 PCIe or GH200 is not an H100 SXM and falls back to the roofline). rtx_pro_6000_server: the RTX PRO
#: 6000 Blackwell Server Edition (aiconfigurator-core's systems/rtx_pro_6000_server.yaml); b60: Intel's Arc Pro B60
#: under vLLM's XPU backend (systems/b60.yaml), its only profiled engine
SYSTEMS: Mapping[str, str] = {
    "H100-SXM-80GB": "h100_sxm", "H200-SXM-141GB": "h200_sxm", "B200": "b200_sxm", "B300": "b300_sxm",
    "GB200": "gb200", "GB300": "gb300", "A100-SXM-80GB": "a100_sxm", "L40S": "l40s",
    "RTX-PRO-6000": "rtx_pro_6000_server", "Arc-Pro-B60": "b60",
}
#: system name -> catalog GPU name (the inverse of SYSTEMS)
GPU_OF_SYSTEM: Mapping[str, str] = {s: g for g, s in SYSTEMS.items()}
ENGINE_NAMES = ("vllm", "sglang", "trtllm", "torch")
#: GPU vendors (catalog `GPU.vendor`) an engine runs on, where it does not run on every one: TensorRT-LLM is built
#: on CUDA for NVIDIA GPUs only (NVIDIA/TensorRT-LLM README: "optimize inference on NVIDIA GPUs"); vLLM and SGLang
#: also ship ROCm builds, and the `torch` collector runs wherever PyTorch does
ENGINE_VENDORS: Mapping[str, tuple[str, ...]] = {"trtllm": ("nvidia",)}


def runs_on(engine: Any, vendor: str) -> bool:
    """Whether `engine` runs on GPUs of `vendor` (catalog `GPU.vendor`): the one home of `ENGINE_VENDORS`' rule."""
    allowed = ENGINE_VENDORS.get(engine_key(engine))
    return allowed is None or vendor in allowed


ENGINE_ALIASES = {"vllm": "vllm", "sglang": "sglang", "trtllm": "trtllm", "tensorrt-llm": "trtllm",
                  "tensorrt_llm": "trtllm", "trt-llm": "trtllm", "torch": "torch", "pytorch": "torch"}


#: a builder of one group of a profile's tables: () -> ({table name: Table}, {keyed table name: shape rows})
GroupBuilder = Callable[[], tuple[dict[str, Table], dict[str, np.ndarray]]]


class TableGroups:
    """A profile's tables built one group at a time, on the first lookup of a name the group owns (`family`: a
    name's part before its first dot; a group owns the families it lists, and those starting with a listed prefix
    that ends in "_"). `build.build_one` hands every group but the GEMM tables here, so a study of a dense model
    never builds the MoE or sparse-attention groups, the slowest to build. Building a group
    is deterministic (the same raw files, the same code), so a lazy table is the table an eager build gives;
    iterating, sizing or pickling builds every group, in the order given. Scoped to its profile: no state
    outside it."""

    def __init__(self, tables: Mapping[str, Table], keys: Mapping[str, np.ndarray],
                 groups: list[tuple[tuple[str, ...], GroupBuilder]]) -> None:
        self.tables: dict[str, Table] = dict(tables)
        self.keys: dict[str, np.ndarray] = dict(keys)
        self._pending = list(groups)
        # one builder at a time: threads sharing a profile (a threaded Dask worker, a thread pool of trials) would
        # otherwise build a group twice and could drop another thread's pending group from the list
        self._lock = threading.RLock()

    @staticmethod
    def family(name: str) -> str:
        return name.split(".", 1)[0]

    @staticmethod
    def _owns(families: tuple[str, ...], family: str) -> bool:
        return any(family == f or (f.endswith("_") and family.startswith(f)) for f in families)

    def _build(self, name: str | None) -> None:
        """Build the pending groups that own `name` (None: all of them)."""
        fam = None if name is None else self.family(name)
        with self._lock:
            keep = []
            for families, builder in self._pending:
                if fam is None or self._owns(families, fam):
                    t, k = builder()
                    self.tables.update(t)
                    self.keys.update(k)
                else:
                    keep.append((families, builder))
            self._pending = keep

    def lookup(self, which: str, name: str) -> Any:
        """``which`` ("tables" / "keys") entry `name`, or None."""
        got = getattr(self, which)
        if name not in got and self._pending:
            self._build(name)
        return got.get(name)

    def complete(self, which: str) -> dict[str, Any]:
        """Every entry of ``which``, all groups built."""
        if self._pending:
            self._build(None)
        return getattr(self, which)


class LazyTables(MutableMapping[str, Any]):
    """`KernelProfile.tables` / `.keys` over a `TableGroups`: lookups build only the owning group; iteration and
    len build every group. Setting or deleting an entry builds its group first (a later build never overwrites
    it), as a dict of the eager build would hold it. Pickles as the plain dict of every entry."""

    def __init__(self, groups: TableGroups, which: str) -> None:
        self._groups, self._which = groups, which

    def __getitem__(self, name: str) -> Any:
        got = self._groups.lookup(self._which, name)
        if got is None:
            raise KeyError(name)
        return got

    def get(self, name: str, default: Any = None) -> Any:
        got = self._groups.lookup(self._which, name)
        return default if got is None else got

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._groups.lookup(self._which, name) is not None

    def __setitem__(self, name: str, value: Any) -> None:
        self._groups.lookup(self._which, name)
        getattr(self._groups, self._which)[name] = value

    def __delitem__(self, name: str) -> None:
        self._groups.lookup(self._which, name)
        del getattr(self._groups, self._which)[name]

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._groups.complete(self._which)))

    def __len__(self) -> int:
        return len(self._groups.complete(self._which))

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return dict, (dict(self._groups.complete(self._which)),)

    def __repr__(self) -> str:
        return f"LazyTables({self._which}, {len(self._groups._pending)} groups not built yet)"


@dataclass(frozen=True)
class KernelProfile:
    """Latency tables (ms) of one GPU system under one engine version. Table names: `gemm.<dtype>` (m, n, k),
    `context_attention.<kv dtype>` (batch, input length, query heads), `generation_attention.<kv dtype>`
    (batch, KV length, KV heads), `comm.custom_allreduce` / `comm.nccl_<op>` (GPUs, message elements),
    `moe.<weight format>` (shape index, tokens) with its measured shapes in `keys` (see `moe_shape_index`),
    `comm.deepep_{ll,normal}_{dispatch,combine}` (shape index, tokens per rank) keyed by (hidden, top-k, experts):
    DeepEP's kernels inside one node, measured under SGLang and carried by every engine's profile on that GPU."""

    system: str
    engine: str
    version: str
    source: str
    tables: Mapping[str, Table] = field(default_factory=dict)
    #: per keyed table (`moe.*`): the (K, n) shape rows its first axis 1..K indexes
    keys: Mapping[str, np.ndarray] = field(default_factory=dict)

    @property
    def filename(self) -> str:
        return f"{self.system}__{self.engine}__{self.version}.npz"

    @property
    def key(self) -> str:
        return f"{self.system}/{self.engine}/{self.version}"

    def table(self, name: str) -> Table | None:
        return self.tables.get(name)

    def shape_index(self, name: str, shapes: np.ndarray) -> np.ndarray:
        """Row of keyed table `name` (1..K) measured at each of `shapes` (m, n), 0 where that exact shape was
        not measured (or the table does not exist)."""
        shapes = np.asarray(shapes, dtype=float)
        k = self.keys.get(name)
        if k is None or not len(shapes):
            return np.zeros(len(shapes), dtype=np.intp)
        hit = np.all(np.isclose(shapes[:, None, :], k[None, :, :], rtol=1e-6, atol=0.0), axis=2)
        return np.where(hit.any(axis=1), hit.argmax(axis=1) + 1, 0)

    @functools.cached_property
    def sha256(self) -> str:
        """Hash of the tables' contents (recorded in studies' provenance)."""
        h = hashlib.sha256(self.key.encode())
        for name in sorted(self.tables):
            t = self.tables[name]
            h.update(name.encode())
            for a in t.axes:
                h.update(np.ascontiguousarray(a, dtype=np.float64).tobytes())
            h.update(np.ascontiguousarray(t.log_ms, dtype=np.float32).tobytes())
            if name in self.keys:
                h.update(np.ascontiguousarray(self.keys[name], dtype=np.float64).tobytes())
        return h.hexdigest()


def save(p: KernelProfile, path: Path) -> None:
    arrays: dict[str, np.ndarray] = {}
    for name, t in p.tables.items():
        arrays.update(t.to_arrays(name))
    for name, k in p.keys.items():
        arrays[f"{name}|keys"] = np.asarray(k, dtype=np.float64)
    meta = {"system": p.system, "engine": p.engine, "version": p.version, "source": p.source,
            "tables": sorted(p.tables)}
    arrays["__meta__"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    buf = io.BytesIO()
    # numpy's stub checks **kwds against the keyword allow_pickle: bool too; no table array is named allow_pickle
    np.savez_compressed(buf, **arrays)  # type: ignore[arg-type]
    Path(path).write_bytes(buf.getvalue())


def read(path: str | Path) -> KernelProfile:
    """A profile file written by `save` (or `python -m objectives.profiles.build`)."""
    path = Path(path)
    try:
        z = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: not a kernel profile file (.npz written by objectives.profiles): {e}") from None
    with z:
        if "__meta__" not in z.files:
            raise ValueError(f"{path}: not a kernel profile file (no __meta__ entry)")
        meta = json.loads(bytes(z["__meta__"]).decode())
        arrays = {k: z[k] for k in z.files if k != "__meta__"}
    tables = {name: Table.from_arrays(name, arrays) for name in meta["tables"]}
    keys = {name: arrays[f"{name}|keys"] for name in meta["tables"] if f"{name}|keys" in arrays}
    return KernelProfile(meta["system"], meta["engine"], meta["version"], meta["source"], tables, keys)


@functools.lru_cache(maxsize=1)
def _shipped_index() -> tuple[tuple[str, str, str, str], ...]:
    f = DATA_DIR / "index.json"
    if not f.exists():
        return ()
    idx = json.loads(f.read_text())
    return tuple((e["system"], e["engine"], e["version"], e["file"]) for e in idx["profiles"])


def available(gpu: str | None = None) -> dict[str, list[str]]:
    """{engine: [versions]} with a shipped profile for `gpu` (a catalog name or alias, "H200", or a system name,
    "h200_sxm"), or for any GPU."""
    system = None if gpu is None else SYSTEMS.get(gpu, gpu)
    if system is not None and system not in GPU_OF_SYSTEM:  # an alias of a catalog GPU
        from objectives.catalog import CatalogError, default_catalog
        try:
            system = SYSTEMS.get(default_catalog().gpu(system).name, system)
        except CatalogError:
            pass
    out: dict[str, list[str]] = {}
    for s, e, v, _ in _shipped_index():
        if system is None or s == system:
            out.setdefault(e, [])
            if v not in out[e]:
                out[e].append(v)
    return out


def system_of(gpu: str) -> str | None:
    """The kernel-table system of a catalog GPU name (None: no measured profile for that part)."""
    return SYSTEMS.get(gpu)


#: the separator of an engine's release named without kernel tables of its own ('vllm~=0.13.0'): the release decides
#: what the engine does (`overlaps`, `inference.resolve.engine_behaviour`), the kernel tables are the GPU's newest
#: (`load`), as for the bare name. The spelling of a measured row whose release has no shipped tables
#: (`calibration.measurements.engine_releases`); 'name==version' names tables that must exist
RELEASE_SEP = "~="


#: the container images each engine ships as, by repository (the registry host given or not): the spelling a user
#: pastes from a launch script, as each engine's docs give it: 'vllm/vllm-openai:v0.11.0' (vLLM, "Using Docker"),
#: 'lmsysorg/sglang:v0.5.6.post2-cu129' (SGLang, installation with Docker), 'nvcr.io/nvidia/tensorrt-llm/release:
#: 1.0.0rc4' (TensorRT-LLM, its NGC container). Its tag names a release (as `RELEASE_SEP` does, the kernel tables
#: the newest), 'latest' or none the newest (the bare name); a digest ('@sha256:...') names none
ENGINE_IMAGES: Mapping[str, str] = {"vllm/vllm-openai": "vllm", "lmsysorg/sglang": "sglang",
                                    "nvcr.io/nvidia/tensorrt-llm/release": "trtllm"}
#: registry hosts an image reference may name before its repository without changing which image it is
_DEFAULT_REGISTRIES = ("docker.io/", "registry-1.docker.io/", "index.docker.io/")
#: an image's rolling tags, each the newest build of its branch as `load`'s newest release is (the bare name), with a
#: build suffix or not ('latest-cu130', 'nightly-dev'): 'latest' (every engine's), vLLM's 'nightly' (docs
#: "Using Docker": vllm/vllm-openai:nightly), SGLang's 'dev' (docs installation: lmsysorg/sglang:dev) and 'main'.
#: A dated build's tag ('nightly-dev-20260216-d3bae71e') is a build label (`_parse_release`), not a rolling tag
ROLLING_TAGS = r"(?:latest|nightly|dev|main)(?:-[A-Za-z][A-Za-z0-9._]*)?"


def _parse_engine(engine: Any) -> tuple[str, Any, bool]:
    """'sglang==0.5.14', 'trtllm@1.3.0rc20', 'vllm:0.24.0', 'vllm~=0.13.0' (`RELEASE_SEP`), ('vllm', '0.24.0'), an
    image reference ('vllm/vllm-openai:v0.11.0', `ENGINE_IMAGES`) -> (name as given, or the image's engine; version
    or None; whether the version names a release alone: `RELEASE_SEP` or an image's tag). An image of no engine
    comes back as its repository (an unknown name); its digest raises ValueError."""
    if isinstance(engine, tuple) and len(engine) == 2:
        return str(engine[0]), engine[1], False
    s = str(engine).strip()
    if "/" in s and RELEASE_SEP not in s and "==" not in s:
        return _parse_image(s)
    for sep in (RELEASE_SEP, "==", "@", ":"):
        if sep in s:
            name, ver = s.split(sep, 1)
            return name, ver, sep == RELEASE_SEP
    return s, None, False


def _parse_image(ref: str) -> tuple[str, Any, bool]:
    """`_parse_engine` of an image reference: repository[:tag] (`ENGINE_IMAGES`; no tag or a rolling one,
    `ROLLING_TAGS`: the newest)."""
    if "@" in ref:
        raise ValueError(f"engine {ref!r}: an image digest names no release; give its tag "
                         f"('{ref.split('@', 1)[0]}:<release>') or a spelling of {ENGINE_SPELLINGS}")
    repo, tag = ref, None
    if ":" in ref.rsplit("/", 1)[-1]:       # a ':' before the last '/' is a registry host's port
        repo, tag = ref.rsplit(":", 1)
    key = repo.lower()
    for host in _DEFAULT_REGISTRIES:
        key = key.removeprefix(host)
    name = ENGINE_IMAGES.get(key, repo)
    if tag is None or re.fullmatch(ROLLING_TAGS, tag.strip(), re.I):
        return name, None, False
    return name, tag, True


def _split_engine(engine: Any) -> tuple[str, Any]:
    """(name as given, version or None) of `engine` (`_parse_engine`)."""
    return _parse_engine(engine)[:2]


def engine_key(engine: Any) -> str:
    """The engine's canonical name without its version ('TensorRT-LLM==1.2' -> 'trtllm'), for tables keyed by
    engine; a name that is not an engine ('roofline', '', None) comes back lower-cased instead of raising."""
    name = _split_engine("" if engine is None else engine)[0].strip().lower()
    return ENGINE_ALIASES.get(name, name)


#: engines that run a waiting prompt's prefill as a batch of its own while the running decodes pause, instead of
#: mixing prompt chunks into decode iterations: SGLang, whose ``enable_mixed_chunk`` is off by default
#: (python/sglang/srt/server_args.py, 0.5.9 to 0.5.14; ``Scheduler.get_next_batch_to_run`` in
#: python/sglang/srt/managers/scheduler.py runs a new prefill batch first, else the decode batch). Its prefill batch
#: holds up to chunked_prefill_size prompt tokens, the running decodes taking none of them; a prompt longer than
#: that runs one chunk per prefill batch. The closed form (`inference.estimate`, ``Coeffs.prefill_alone``) and the
#: simulator (`serving.Scheduler` policy "auto" -> "prefill_first") read it here
PREFILL_ALONE_ENGINES = ("sglang",)


#: engines whose scheduler forms and launches the next batch while the current one runs, by default, and the first
#: release of each where it does (None: every release the model knows). A request that reaches the scheduler while
#: batch N runs is received when N's results are in, after N+1 was formed: it joins N+2, one iteration later than
#: where each batch is formed when the previous one ends.
#: - SGLang's ``event_loop_overlap`` (python/sglang/srt/managers/scheduler.py; the default since 0.4.0,
#:   sgl-project/sglang#2067, unless ``--disable-overlap-schedule``, which speculative decoding's first version sets):
#:   its loop receives new requests, forms batch N+1 and launches it right after launching batch N, then waits for
#:   N's results.
#: - vLLM's async scheduling (``SchedulerConfig.async_scheduling`` in vllm/config/scheduler.py, None resolved to on
#:   where the executor supports it in vllm/config/vllm.py; ``AsyncScheduler`` and ``EngineCore.step_with_batch_queue``
#:   in vllm/v1/engine/core.py, a queue of two batches: the engine core reads its input queue, schedules N+1 and
#:   submits it, then blocks on N): the default from v0.14.0 (vllm-project/vllm#27614; the release notes' "Async
#:   scheduling is now enabled by default"), not with pipeline parallelism in that release.
#: - TensorRT-LLM's PyTorch executor (``PyExecutor._executor_loop_overlap`` in
#:   tensorrt_llm/_torch/pyexecutor/py_executor.py; ``disable_overlap_scheduler`` False by default in
#:   tensorrt_llm/llmapi/llm_args.py since NVIDIA/TensorRT-LLM#4174, 0.20), the backend trtllm-serve runs by default
#:   from 1.0, hence 1.0.0 here. Its TensorRT-engine backend (the published tables before 0.20) has no such loop; a
#:   disaggregated context server runs without it (`NO_OVERLAP_ROLES`).
#: The closed form (``Coeffs.overlap``: `inference.estimate.arrival_wait_iters`) and the simulator
#: (`serving.Scheduler.overlaps`) read it through `overlaps`
OVERLAP_SINCE: Mapping[str, str | None] = {"sglang": None, "vllm": "0.14.0", "trtllm": "1.0.0"}
#: the first release of each engine of `OVERLAP_SINCE` whose overlap loop stays on with speculative decoding of one
#: draft chain (`inference.Speculative`: MTP, EAGLE / EAGLE-3), by default; an engine not listed turns it off.
#: - vLLM: ``VllmConfig.__post_init__`` (vllm/config/vllm.py) resolves ``async_scheduling`` None to on unless the
#:   speculative method is none of ``EagleModelTypes`` (eagle, eagle3, the MTP types), ngram_gpu, draft_model,
#:   dspark, or ``disable_padded_drafter_batch`` is set: since vllm-project/vllm#31998 (0.14.0, the release that
#:   made async scheduling the default), so from the first release that overlaps.
#: - SGLang: its first speculative worker turned the overlap schedule off (``ServerArgs._handle_speculative_decoding``
#:   in python/sglang/srt/server_args.py, "Overlap scheduler is disabled because of using eagle3 or standalone
#:   speculative decoding") unless ``SGLANG_ENABLE_SPEC_V2`` was set; 0.5.11 made the V2 workers, which run under
#:   ``event_loop_overlap``, the default (the released wheels' python/sglang/srt/environ.py: ``SGLANG_ENABLE_SPEC_V2
#:   = EnvBool(False)`` in 0.5.10 and 0.5.10.post1, ``EnvBool(True)`` in 0.5.11; its ``_handle_speculative_decoding``
#:   keeps the overlap schedule with one draft chain, "Spec v2 is enabled by default for eagle/eagle3/standalone
#:   speculative decoding"; 0.5.13 moved it to python/sglang/srt/arg_groups/speculative_hook.py
#:   ``_handle_eagle_family``, and sgl-project/sglang#27964 then removed the flag with the V1 workers, 0.5.14).
#: - TensorRT-LLM's PyTorch executor keeps ``_executor_loop_overlap`` for the modes whose
#:   ``SpeculativeDecodingMode.support_overlap_scheduler`` holds (tensorrt_llm/_torch/speculative/interface.py: MTP,
#:   EAGLE-3 one-model, the default EAGLE-3 mode), in every release with that loop on by default.
#: A dated build label counts as the newest release (`release_since`): 'sglang~=nightly-dev-20260216-d3bae71e'
#: keeps the loop with speculative decoding though it predates 0.5.11 (the silicon slice holds no such row with it).
SPEC_OVERLAP_SINCE: Mapping[str, str | None] = {"vllm": "0.14.0", "sglang": "0.5.11", "trtllm": "1.0.0"}
#: the engines that overlap in some release (`OVERLAP_SINCE`)
OVERLAP_ENGINES = tuple(OVERLAP_SINCE)
#: serving roles (`serving` disaggregated pools) in which an engine of `OVERLAP_SINCE` runs without its overlap
#: loop: TensorRT-LLM's context servers, whose context-only requests its PyTorch worker refused with the overlap
#: scheduler on ("Context only requests are not supported in pytorch backend when overlap is enabled",
#: tensorrt_llm/executor/base_worker.py, until NVIDIA/TensorRT-LLM#10755), so its disaggregated recipes and
#: `dse deploy` (`deploy.builders`, role "prefill") set ``disable_overlap_scheduler: true`` there
NO_OVERLAP_ROLES: Mapping[str, tuple[str, ...]] = {"trtllm": ("prefill",)}

#: engines of `OVERLAP_SINCE` whose attention-DP rank with no request runs its overlap loop through an idle batch
#: while another rank of its group has work, so it forms its next step while the current one runs, as a busy rank
#: does: a request that reaches it during a step of its group joins the step after the next.
#: - SGLang (python/sglang/srt/managers/scheduler.py): ``prepare_mlp_sync_batch`` gives a rank without a batch an
#:   idle one (``get_idle_batch``) when any rank of the DP group has tokens; ``event_loop_overlap`` launches it and
#:   then processes the previous batch's result, ``process_batch_result_idle`` waiting on its ``copy_done``.
#: - TensorRT-LLM (tensorrt_llm/_torch/pyexecutor/py_executor.py): ``_pad_attention_dp_dummy_request`` adds a dummy
#:   generation request to a rank with no active request while another rank has some; ``_executor_loop_overlap``
#:   forwards that batch, then updates the previous one (``_update_requests`` on its sample state).
#: Not vLLM: ``DPEngineCoreProc.run_busy_loop`` (vllm/v1/engine/core.py) runs an idle rank's
#: ``execute_dummy_batch`` synchronously and reads its input queue before the next step. The simulator
#: (`serving.engine._Group`) reads it through `forms_idle_ahead`. The same loop order (step N + 1 formed before step
#: N's stop criteria are checked) runs a finished request's extra decode step (SGLang's
#: ``process_batch_result_decode`` skips its token; TensorRT-LLM's overlap "introduces one extra decoding step"), where
#: vLLM's async scheduler skips a request at max_tokens: `serving.engine._Replica.extra`
IDLE_AHEAD_ENGINES = ("sglang", "trtllm")


#: engines that start one API server per attention-DP (data-parallel) rank: vLLM, whose ``api_server_count``
#: defaults to ``data_parallel_size`` under its internal load balancer (vllm/entrypoints/cli/serve.py
#: ``ServeSubcommand.cmd``), each API server's client spreading its requests over the ranks. SGLang starts one
#: TokenizerManager and one detokenizer per server (python/sglang/srt/entrypoints/engine.py ``_launch_subprocesses``)
#: and trtllm-serve is one process: their one API server streams every rank's sequences. The closed form
#: (``Coeffs.stream_ranks``: `inference.estimate.host_ttft_s`), the open loop (`serving.handoff.host_ms`) and the
#: simulator (`serving.simulator.streams_at_first`'s grouping) read it through `api_server_ranks`
RANK_API_ENGINES = ("vllm",)


def per_engine(engines: Any, value: Callable[[str], float]) -> np.ndarray:
    """`value(name)` (a number or bool) for each engine name of `engines` (any shape; None reads as 'None'), each
    distinct name once (a sweep of millions holds a handful), as floats of `engines`' shape."""
    e = np.asarray(engines, dtype=object)
    names, inverse = np.unique(e.ravel().astype(str), return_inverse=True)
    return np.array([value(n) for n in names], dtype=float)[np.ravel(inverse)].reshape(e.shape)


def api_server_ranks(engines: Any, attn_dp: Any) -> np.ndarray:
    """The attention-DP ranks whose running sequences one API server streams, for each engine name of `engines`
    (any spelling `engine_key` takes) with `attn_dp` ranks a replica (broadcast against it): 1 for the engines of
    `RANK_API_ENGINES` (an API server a rank), else all `attn_dp` (one API server a replica)."""
    per_rank = per_engine(engines, lambda n: engine_key(n) in RANK_API_ENGINES) > 0
    return np.where(per_rank, 1.0, np.asarray(attn_dp, dtype=float))


#: the spellings of an engine an argument takes, for error messages
ENGINE_SPELLINGS = ("'name', 'name==version' (its kernel tables, or another build's of that release), 'name~=release' "
                    "(the release's behaviour) or an image reference 'repository:release' or 'repository:latest' ("
                    + ", ".join(ENGINE_IMAGES) + "; 'nightly', 'dev' and 'main' read as 'latest')")


def _parse_release(ver: Any) -> Any:
    """The release `ver` names, the one parser of release spellings (`is_release`, `release_key`, `release_since`):
    a `packaging.version.Version` for a PEP 440 version, its local part ('0.13.0+cu128') dropped; the release is
    what precedes the first '-' that is followed by a letter after a complete version, the tail a build or platform
    suffix ('0.5.6.post2-cu129', 'v0.5.0rc2-rocm630-mi30x', '0.5.14-b200', '0.5.14-dev', '0.5.14-gb200'), since the
    build (the CUDA or ROCm or GPU it was compiled for) does not change what the scheduler does; except a tail that
    is a PEP 440 part written out with its number, rc / post / dev ('0.14.0-rc1', '1.1.0-dev.2': release candidate,
    development build), which stays the version's. The string itself for a build label led by a letter and
    holding a '-' ('nightly-dev-20260216-d3bae71e', 'glm5-hopper'); None for anything else."""
    from packaging.version import InvalidVersion, Version
    v = "" if ver is None else str(ver).strip()
    if not v or any(sep in v for sep in (RELEASE_SEP, "==", "@", ":", "/")):
        return None
    if not re.match(r"v?\d", v, re.I):
        return v if re.fullmatch(r"[A-Za-z][A-Za-z0-9._+]*-[A-Za-z0-9._+-]+", v) else None
    head = v
    for m in re.finditer(r"-(?=[A-Za-z])", v):
        tail = v[m.start() + 1:]
        if re.match(r"(?:rc|post|dev)\.?\d+(?:-|$)", tail, re.I):
            continue            # a PEP 440 part ('-rc1', '-dev.2'), the version's own
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9._-]*", tail):
            return None
        head = v[:m.start()]
        break
    try:
        return Version(Version(head).public)
    except InvalidVersion:
        return None


def is_release(ver: Any) -> bool:
    """Whether `ver` names an engine release (`_parse_release`): a PEP 440 version ('0.13.0', '0.14.0rc1',
    'v0.15.1', 'V0.15.1', '1.1.0-dev.2'), with a build suffix or not ('0.13.0+cu128', '0.5.6.post2-cu129'), or a
    build label led by a letter and holding a '-' (the silicon rows' 'nightly-dev-20260216-d3bae71e',
    'glm5-hopper': the newest, `release_since`); not an empty string, one holding a separator, one led by a digit
    (or 'v' and a digit) that is no version ('0.13,0', '1.1/1.2', '0.13.0-1.2'), nor a bare word ('abc', 'O.14.0',
    'latest')."""
    return _parse_release(ver) is not None


def _check_release(engine: Any, ver: str) -> None:
    """ValueError naming `ver` and the valid spellings where `engine`'s release named alone (`RELEASE_SEP`) is
    none (`is_release`)."""
    if is_release(ver):
        return
    if isinstance(engine, str) and "/" in engine and RELEASE_SEP not in engine:
        raise ValueError(f"engine {engine!r}: tag {ver!r} is no release (a version such as v0.11.0 or "
                         f"v0.5.6.post2-cu129, or a rolling tag: latest, nightly, dev, main); valid spellings: "
                         f"{ENGINE_SPELLINGS}")
    raise ValueError(f"engine {engine!r}: {ver!r} is no release (a version such as 0.13.0, 0.14.0rc1 or "
                     f"0.5.6.post2-cu129, or a build label such as nightly-dev); valid spellings: "
                     f"{ENGINE_SPELLINGS}")


def engine_release(engine: Any) -> str | None:
    """The release `engine` names, as spelled ('vllm==0.13.0', 'vllm~=0.13.0': '0.13.0'; 'vllm/vllm-openai:v0.11.0':
    'v0.11.0'; None for a bare name or an image's 'latest', which mean the newest release, the profile `load`
    picks). A release named alone that is none (`_check_release`: 'vllm~=abc', 'vllm~=0.13,0', 'vllm~=',
    'vllm/vllm-openai:foo') raises ValueError naming it; an image's rolling tag (`ROLLING_TAGS`) is the newest."""
    ver = _split_engine("" if engine is None else engine)[1]
    if _release_only(engine):
        _check_release(engine, str(ver).strip())
    return None if ver is None or not str(ver).strip() else str(ver).strip()


def release_key(ver: Any) -> tuple:
    """Sort key of an engine release (`is_release`'s spellings; any string): PEP 440 versions in packaging's order
    (0.14.0.dev3 < 0.14.0rc1 < 0.14.0 < 0.14.0.post1 < 0.14.1; a leading 'v' or 'V' and a build suffix ignored,
    `_parse_release`: '0.14.0+cu128' and '0.14.0-cu129' are 0.14.0), after them a build label that is no version
    ('nightly-dev-20260216-d3bae71e', 'main-00209af1': the newest, whatever its date), labels among themselves by
    name. The one order of releases: `release_since`, the flag lists (`deploy.flags.flag_list`) and the kernel
    tables' versions (`profiles.build.versions`) sort by it."""
    from packaging.version import Version
    v = "" if ver is None else str(ver).strip()
    got = _parse_release(v)
    return (0, got, "") if isinstance(got, Version) else (1, Version("0"), v)


def release_since(engine: Any, first: str | None) -> bool:
    """Whether `engine`'s release (`engine_release`) is `first` or later (`release_key`): always where `first` is None
    or the name is bare (the newest release); a build label that is no version (a nightly's,
    'nightly-dev-20260216-d3bae71e') is taken as newer than `first`, whatever its date. A release candidate or
    post-release of `first` (0.14.0rc1, 0.14.0.post1) counts as `first`, since a release candidate is cut from the
    release's branch (vLLM's 0.14.0rc1 already has vllm-project/vllm#31998); a development build (0.14.0.dev3,
    0.14.0rc1.dev2) precedes it as packaging orders it: it is built from main before the branch is cut, so it may
    lack what the release brings. A build suffix ('0.14.0-cu129', '0.14.0+cu128') is no part of the release."""
    ver = engine_release(engine)
    if first is None or ver is None:
        return True
    from packaging.version import Version
    got = _parse_release(ver)
    if not isinstance(got, Version):
        return True
    if not got.is_devrelease:
        got = Version(got.base_version)
    return bool(release_key(str(got)) >= release_key(Version(first).base_version))


def overlaps(engine: Any, speculative: bool = False) -> bool:
    """Whether `engine` (any spelling `engine_key` takes, optionally with its release: 'vllm==0.13.0', 'vllm~=0.13.0')
    forms its next batch while the current one runs by default (`OVERLAP_SINCE`, `release_since`: a bare name means
    the newest release); with `speculative` decoding on, only from its release in `SPEC_OVERLAP_SINCE`."""
    key = engine_key(engine)
    if key not in OVERLAP_SINCE or not release_since(engine, OVERLAP_SINCE[key]):
        return False
    return not speculative or (key in SPEC_OVERLAP_SINCE and release_since(engine, SPEC_OVERLAP_SINCE[key]))


def overlaps_in_role(engine: Any, role: str | None) -> bool:
    """Whether a pool of `role` ("agg", "prefill", "decode"; None: an aggregated replica) keeps `engine`'s overlap
    loop where it has one (`overlaps`): not in the roles `NO_OVERLAP_ROLES` names for it."""
    return role is None or role not in NO_OVERLAP_ROLES.get(engine_key(engine), ())


def overlap_mask(engines: Any) -> np.ndarray:
    """1.0 for each engine name that forms its next batch while the current one runs (`overlaps`), else 0.0: the
    rows of `overlap_rows` for models without linear-attention layers."""
    return overlap_rows(list(engines), "")


#: linear-attention kinds (`Model.linear_attn_kind`) whose models an engine of `OVERLAP_ENGINES` serves without its
#: overlap scheduler. SGLang keeps a hybrid model's recurrent state in its radix cache (`MambaRadixCache`) and, in
#: the default ``--mamba-scheduler-strategy no_buffer`` without speculative decoding, turns the overlap schedule
#: off ("mamba no_buffer is not compatible with overlap schedule": ``ServerArgs._handle_mamba_radix_cache`` in
#: python/sglang/srt/server_args.py, called for Qwen3-Next / Qwen3.5 by ``_handle_qwen_family``, which on Blackwell
#: also picks the triton attention backend there, and for Nemotron-H's Mamba-2). Kimi's KDA models pass
#: ``support_mamba_cache=False``: the radix cache goes, the overlap schedule stays. Not with speculative decoding:
#: the same function turns the overlap schedule off only ``if self.speculative_algorithm is None``; with a draft it
#: drops the radix cache instead (0.5.9: "Disabling radix cache since speculative decoding for {model_arch} is not
#: supported with radix cache yet"), or on CUDA from 0.5.10 refuses no_buffer with the radix cache on (a ValueError
#: asking for extra_buffer; --disable-radix-cache serves too), either way leaving the loop to the speculative
#: worker as for any model (`SPEC_OVERLAP_SINCE`, `inference.resolve.EngineBehaviour.spec_overlap`). Not modelled:
#: 0.5.14 resolves ``--mamba-radix-cache-strategy auto`` to extra_buffer where the overlap schedule is on and the
#: model supports it (``_support_mamba_cache_extra_buffer``: these models with the default triton linear-attention
#: backend), keeping the loop; the silicon rows' nightly labels, the newest to `release_since`, predate it. The
#: closed form (``Coeffs.overlap``) and the simulator (`inference.StepModel.overlap_scheduler`) read it here
NO_OVERLAP_LINEAR_KINDS = {"sglang": ("gdn", "mamba2")}


def overlap_rows(engines: Any, kinds: Any) -> np.ndarray:
    """1.0 for each (engine name, linear-attention kind: "" for none) pair whose engine forms its next batch while
    the current one runs for that model (`overlaps`, less `NO_OVERLAP_LINEAR_KINDS`), else 0.0; arrays of one
    shape (or broadcasting)."""
    return _engine_kind_rows(engines, kinds, lambda en, kd: overlaps(en) and kd not in
                             NO_OVERLAP_LINEAR_KINDS.get(engine_key(en), ())).astype(float)


def _engine_kind_rows(engines: Any, kinds: Any, rule: Callable[[str, str], bool]) -> np.ndarray:
    """`rule` (engine name, linear-attention kind) -> bool for each pair of `engines` and `kinds` (arrays of one
    shape, or broadcasting), evaluated once per distinct pair."""
    e, k = np.broadcast_arrays(np.asarray(engines, dtype=object), np.asarray(kinds, dtype=object))
    pairs, inverse = np.unique(np.stack([e.ravel().astype(str), k.ravel().astype(str)], axis=1), axis=0,
                               return_inverse=True)
    vals = np.array([bool(rule(en, kd)) for en, kd in pairs], dtype=bool)
    return vals[np.ravel(inverse)].reshape(e.shape)


#: engines whose prefill of a Gated DeltaNet or Kimi Delta Attention layer JIT-compiles a Triton kernel for every
#: token count it has not met, on the forward's critical path, and the kinds that run it. Their copies of FLA's
#: ``l2norm_fwd_kernel`` (the q / k L2 norm before the chunked scan, shared by the GDN and KDA paths) declare the
#: forward's token count ``T`` a ``tl.constexpr``, so every new count is a new specialization compiled inline in
#: the scheduler (prefill and mixed forwards; CUDA-graph decode replays freeze it): SGLang
#: python/sglang/srt/layers/attention/fla/l2norm.py until sgl-project/sglang#31558 (2026-07-17; #23448 and
#: #30403 describe the compile on the serving path); TensorRT-LLM's copy of SGLang's
#: (tensorrt_llm/_torch/modules/fla/l2norm.py). vLLM's default L2 norm (``l2norm_fwd_kernel2``) takes the count at
#: run time. Mamba-2 layers run no such norm. A served request whose prompt forward meets a new count pays one
#: compile before its first token (`Efficiency` ``attn_ttft_ms["linear"]``, a host's compile time, fitted; its
#: default the sources' ~100 ms). Once a request, not once a prompt-carrying forward: a compile in every prefill
#: forward would pause the decodes, which the rows' TPOT does not show (docs/profiles.md, thirty-fourth round). The
#: silicon slice's SGLang releases (0.5.9, 0.5.10.post1, nightlies of February and April 2026) predate the fix
JIT_PREFILL_KINDS = {"sglang": ("gdn", "kda"), "trtllm": ("gdn", "kda")}


def jit_prefill_rows(engines: Any, kinds: Any) -> np.ndarray:
    """True for each (engine name, linear-attention kind) pair whose prompt forward compiles a kernel for a new
    token count (`JIT_PREFILL_KINDS`); arrays of one shape (or broadcasting)."""
    return _engine_kind_rows(engines, kinds, lambda en, kd: kd in JIT_PREFILL_KINDS.get(engine_key(en), ()))


def forms_idle_ahead(engine: Any) -> bool:
    """Whether `engine` (any spelling `engine_key` takes) forms an idle attention-DP rank's next step ahead while its
    group is busy (`IDLE_AHEAD_ENGINES`; where its overlap loop is on at all: `serving.Scheduler.overlaps`)."""
    return engine_key(engine) in IDLE_AHEAD_ENGINES


def runs_prefill_alone(engine: Any) -> bool:
    """Whether `engine` (any spelling `engine_key` takes) runs prefill batches alone (`PREFILL_ALONE_ENGINES`)."""
    return engine_key(engine) in PREFILL_ALONE_ENGINES


def prefill_alone_mask(engines: Any) -> np.ndarray:
    """1.0 for each engine name that runs prefill batches alone (`runs_prefill_alone`), else 0.0; each distinct
    name looked up once (None reads as no engine: not alone)."""
    return per_engine(engines, runs_prefill_alone)


def resolve_engine(engine: Any) -> tuple[str, str | None]:
    """'vllm', 'sglang==0.5.14', 'trtllm@1.3.0rc20', ('vllm', '0.24.0') -> (engine, version of its kernel tables or
    None: the newest). A release named alone ('vllm~=0.13.0', `RELEASE_SEP`) reads the newest tables (None). A
    separator with no version after it ('sglang==') is refused: it names no version, and the newest would be a
    guess."""
    name, ver = _split_engine(engine)
    key = ENGINE_ALIASES.get(name.strip().lower())
    if key is None:
        raise ValueError(f"unknown engine {engine!r}; valid: {', '.join(ENGINE_NAMES)}; spellings: "
                         f"{ENGINE_SPELLINGS}")
    if _release_only(engine):
        engine_release(engine)   # a release that is none raises there, naming it
        return key, None
    if isinstance(ver, str) and not ver.strip():
        raise ValueError(f"engine {engine!r}: empty version after the name; give one ('{key}==<version>', the "
                         f"versions of a GPU: objectives.profiles.available(gpu); or '{key}~=<release>', any "
                         f"release, on the newest tables) or the name alone for the newest")
    return key, (str(ver).strip() if ver else None)


def _release_only(engine: Any) -> bool:
    """Whether `engine` names a release without kernel tables of its own (`RELEASE_SEP`, an image's tag)."""
    return isinstance(engine, str) and _parse_engine(engine)[2]


def engine_label(engine: Any) -> str:
    """The canonical spelling of an engine (`resolve_engine`): 'vllm' for ' VLLM ', 'vllm==0.24.0' for
    'vllm@0.24.0', 'vllm~=0.13.0' for a release named alone (`RELEASE_SEP`), the name result rows carry in their
    ``engine`` column. Unknown names raise as there."""
    name, ver = resolve_engine(engine)
    if _release_only(engine):
        return f"{name}{RELEASE_SEP}{engine_release(engine)}"
    return name if ver is None else f"{name}=={ver}"


def build_order(vs: Any) -> list[str]:
    """Versions of kernel tables oldest first (`release_key`), two builds of one release ('2.11.0+cu129',
    '2.11.0+cu130') in the order of their spellings, so that a pick among them does not hang on a listing's order."""
    return sorted(vs, key=lambda v: (release_key(v), str(v)))


#: when each kernel-table version's engine was built (engine, version) -> ISO date: what a dated build label resolves
#: by (`dated_tables`). A version without a date here is read by release spellings and the bare name only.
#: - SGLang 0.5.14: 2026-06-25, the ``node_date`` of its wheel's sglang-0.5.14.dist-info/scm_version.json (PyPI).
#: - SGLang 0.0.0.dev1+ga4cf2ea12 (DSA module tables only, `build.DATED_TABLES`): SGLang main of 2026-04-16, the head
#:   of that day's scheduled nightly CI run 24486059047, between 0.5.10.post1 and 0.5.11 (docs/profiles.md, glm5fold)
TABLE_BUILDS: Mapping[tuple[str, str], str] = {("sglang", "0.5.14"): "2026-06-25",
                                               ("sglang", "0.0.0.dev1+ga4cf2ea12"): "2026-04-16"}


#: when each engine release named alone (`RELEASE_SEP`, an image's tag) was built (engine, release) -> ISO date: the
#: timestamp of the dist-info/METADATA entry in the release's wheel on PyPI (`pip download --no-deps sglang==X`,
#: `unzip -l`; 0.5.14's wheel: 2026-06-26 04:23, the day after its scm_version.json node_date, `TABLE_BUILDS`). Such
#: a release reads the kernel tables built nearest it by the dated builds' rule (`dated_tables`); a release not
#: listed takes the date of the first listed one after it (it came out no later), else the newest listed one's (no
#: earlier); an engine without dated tables, none (the newest tables, as before).
RELEASE_DATES: Mapping[tuple[str, str], str] = {
    ("sglang", "0.5.9"): "2026-02-23", ("sglang", "0.5.10"): "2026-04-05", ("sglang", "0.5.10.post1"): "2026-04-08",
    ("sglang", "0.5.11"): "2026-05-07", ("sglang", "0.5.12"): "2026-05-16", ("sglang", "0.5.12.post1"): "2026-05-23",
    ("sglang", "0.5.13"): "2026-06-11", ("sglang", "0.5.13.post1"): "2026-06-15", ("sglang", "0.5.14"): "2026-06-26",
    ("sglang", "0.5.15"): "2026-07-10"}


def is_build_label(ver: Any) -> bool:
    """Whether `ver` is a build label that is no version (`_parse_release`: 'nightly-dev', 'glm5-hopper')."""
    return isinstance(_parse_release(ver), str)


def build_date(label: Any) -> str | None:
    """The ISO date a build label that is no version carries ('nightly-dev-cu13-20260317-1eea7448',
    'nightly-dev-20260216-d3bae71e': its 8-digit YYYYMMDD part), else None (a version, an undated label)."""
    import datetime
    v = "" if label is None else str(label).strip()
    if not is_build_label(v):
        return None
    for m in re.finditer(r"(?<![0-9A-Za-z])(20\d{2})(\d{2})(\d{2})(?![0-9A-Za-z])", v):
        try:
            return datetime.date(*map(int, m.groups())).isoformat()
        except ValueError:
            continue
    return None


def release_date(engine: str, label: Any) -> str | None:
    """The ISO date a release named alone (a version: '0.5.10', 'v0.5.10-cu129', of canonical `engine`) was built
    (`RELEASE_DATES`; an unlisted release, its nearest listed neighbour's after it, else the newest listed one's);
    None for a build label that is no version or an engine with no listed release."""
    v = "" if label is None else str(label).strip()
    if not v or is_build_label(v):
        return None
    listed = sorted((release_key(r), d) for (e, r), d in RELEASE_DATES.items() if e == engine)
    if not listed:
        return None
    key = release_key(v)
    return next((d for k, d in listed if k >= key), listed[-1][1])


def dated_tables(engine: str, label: Any, versions: list[str]) -> str | None:
    """The kernel-table version of `versions` (one GPU's, of canonical `engine`) that a dated label reads: of those
    with a build date (`TABLE_BUILDS`), the newest built on or before the label's date, else the oldest built after
    it (the nearest). The label's date: a build label's own (`build_date`), a release's build (`release_date`).
    None where the label has no date or no version a known one (the newest then, as for any label:
    `release_key`). One rule for every engine and GPU: SGLang's 2026-03 / 04 nightlies and its releases 0.5.9 to
    0.5.13.post1 read the 2026-04-16 build's DSA tables where a GPU has them (B200, H200), 0.5.14's elsewhere."""
    day = build_date(label) or release_date(engine, label)
    dated = sorted((d, v) for v in versions if (d := TABLE_BUILDS.get((engine, v))) is not None)
    if day is None or not dated:
        return None
    before = [v for d, v in dated if d <= day]
    return before[-1] if before else dated[0][1]


def _newest(vs: list[str]) -> str:
    return build_order(vs)[-1]


def load(gpu: str, engine: str, version: str | None = None, full: bool | None = None) -> KernelProfile | None:
    """The kernel profile of catalog GPU `gpu` under `engine` (newest version when None), or None when that GPU
    has no measured profile (the model then uses the roofline). An engine or version that does not exist for a
    profiled GPU raises ValueError naming what exists. `full`: build from the installed aiconfigurator-core's
    full tables (default: when installed) instead of the shipped compact copy. A release named alone
    ('sglang~=0.5.10', an image's tag) or a dated build label ('sglang~=nightly-dev-cu13-20260317-1eea7448') reads
    the tables of the build nearest its date (`dated_tables`), any other the newest; an undated build label
    ('sglang~=nightly-dev') on a GPU whose tables of the engine differ by build date is refused (ValueError): which
    tables it ran is unknown."""
    eng, ver = resolve_engine(engine if version is None else (engine, version))
    system = SYSTEMS.get(gpu)
    if system is None:
        return None
    have = available(gpu)
    if eng not in have:
        why = ""
        if eng in ENGINE_VENDORS:
            from objectives.catalog import gpu as catalog_gpu
            vendor = catalog_gpu(gpu).vendor
            if not runs_on(eng, vendor):
                why = f" ({eng} runs on {' / '.join(ENGINE_VENDORS[eng])} GPUs only; {gpu} is {vendor})"
        raise ValueError(f"no {eng} kernel profile for {gpu}{why}; available: "
                         f"{', '.join(f'{e} {vs}' for e, vs in have.items()) or 'none'}")
    if ver is None:
        label = engine_release(engine) if version is None and _release_only(engine) else None
        builds = [v for v in have[eng] if (eng, v) in TABLE_BUILDS]
        if label is not None and is_build_label(label) and build_date(label) is None and len(builds) > 1:
            raise ValueError(f"engine {engine!r}: the build label {label!r} carries no date, and {gpu}'s {eng} "
                             f"kernel tables differ by build ({', '.join(f'{v} built {TABLE_BUILDS[(eng, v)]}' for v in build_order(builds))}): "
                             f"name the build's dated tag ('{eng}~=nightly-dev-YYYYMMDD-<commit>'), a release "
                             f"('{eng}~=0.5.10'), or '{eng}' alone for the newest")
        ver = dated_tables(eng, label, have[eng]) or _newest(have[eng])
    elif ver not in have[eng]:
        # the tables of the release named, whatever build suffix either spelling carries ('0.24.0-cu129'); the
        # exact build where it ships (above), else the last of its builds (`build_order`)
        same = build_order(v for v in have[eng] if is_release(v) and release_key(v) == release_key(ver))
        if not same:
            raise ValueError(f"no {eng} {ver} kernel profile for {gpu}; versions available: {', '.join(have[eng])}")
        ver = same[-1]
    from .build import aiconfigurator_root
    root = aiconfigurator_root() if full is None or full else None
    if full and root is None:
        raise ValueError("full=True needs the aiconfigurator-core package (pip install -e '.[profiles]')")
    return _load(system, eng, ver, root is not None)


@functools.lru_cache(maxsize=64)
def _load(system: str, engine: str, version: str, full: bool) -> KernelProfile:
    """`load`'s profile, cached on what it resolved to (the kernel-table system, engine, version and which tables),
    not on how it was asked for: an alias of the GPU or the engine, the newest version named or left out, and full
    None or True where the package is installed are one build a process, not one each; the build's groups come
    from the on-disk cache where it holds them (`profiles.cache`)."""
    if full:
        from .build import aiconfigurator_root, build_one
        root = aiconfigurator_root()
        if root is not None and (p := build_one(root, system, engine, version,
                                                "aiconfigurator-core (installed, full tables)", cache=True)) is not None:
            return p
    fname = next(f for s, e, v, f in _shipped_index() if (s, e, v) == (system, engine, version))
    shipped = read(DATA_DIR / fname)
    from .build import DATED_FAMILIES, DATED_TABLES
    if (engine, version) in DATED_TABLES:
        # a dated build's file holds its own tables (`build.DATED_TABLES`); the others are its base release's
        base = _load(system, engine, DATED_TABLES[(engine, version)][0], full)
        return KernelProfile(system, engine, version, f"{shipped.source}; other tables: {base.source} {base.version}",
                             _Overlay(shipped.tables, base.tables, DATED_FAMILIES),
                             _Overlay(shipped.keys, base.keys, DATED_FAMILIES))
    return shipped


class _Overlay(Mapping[str, Any]):
    """`top`'s entries of the table families `own`, `rest`'s of the others (looked up lazily, as `LazyTables`)."""

    def __init__(self, top: Mapping[str, Any], rest: Mapping[str, Any], own: tuple[str, ...]) -> None:
        self._top, self._rest, self._own = top, rest, own

    def _src(self, name: str) -> Mapping[str, Any]:
        return self._top if TableGroups.family(name) in self._own else self._rest

    def __getitem__(self, name: str) -> Any:
        return self._src(name)[name]

    def get(self, name: str, default: Any = None) -> Any:
        return self._src(name).get(name, default)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._src(name)

    def __iter__(self) -> Iterator[str]:
        return iter([*(k for k in self._top if TableGroups.family(k) in self._own),
                     *(k for k in self._rest if TableGroups.family(k) not in self._own)])

    def __len__(self) -> int:
        return sum(1 for _ in self)
