"""Collectives and transfers, each priced on the link it crosses: the scale-up domain (NVLink / Infinity Fabric)
inside it, the scale-out network (InfiniBand / RoCE, per GPU) between domains.

Model: time = latency + bytes x algorithm factor / (link bandwidth x efficiency).
- all-reduce over n GPUs inside one domain: ring/tree bandwidth factor 2 (n - 1) / n; latency = ar_latency_us +
  ar_hop_us x (n - 1), so small (decode) messages are latency-bound and large (prefill) ones bandwidth-bound;
  beyond 8 ranks (one NVL72 domain of up to 72) the hops grow as a tree's depth (`latency_hops`).
- all-reduce over n GPUs spanning k = ceil(n / d) domains of d GPUs (hierarchical, as NCCL/RCCL run it on
  rail-optimized clusters): all-reduce of the whole message among the d GPUs of each domain (reduce-scatter +
  all-gather, scale-up link), and between them an all-reduce over the k domains of each GPU's 1/d shard through its
  own NIC share (scale-out link): the latencies of both stages add. The network stage is two exchanges among the k
  domains in sequence (its reduce-scatter and all-gather phases), each priced as one all-to-all's exchange
  (`OUT_ALLREDUCE_PHASES`).
- all-to-all over n GPUs (MoE dispatch/combine, each token to top_k experts): inside one domain each GPU sends
  top_k (n - 1) / n of its tokens' activations; across k domains a token reaches each other domain it needs once
  over the network (per-node deduplication, as DeepEP does), concurrently with the scale-up traffic (the slower
  sets the time), plus the scale-out latency.
- point-to-point between pipeline stages: one activation transfer per stage boundary; stages are placed on
  consecutive GPUs (TP innermost), so a boundary crosses the network when the stages straddle two domains.
Bandwidths are per GPU per direction (GB/s, as in `GPU.link_bw_gbs`; the scale-out network as
`catalog.System.scale_out_gbs`). The scale-out latencies and efficiency are the efficiency file's "roce" link
(the RDMA network). All arguments broadcast.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

Num = Any


#: exchanges among the domains in sequence in an all-reduce's network stage (a reduce-scatter then an all-gather of
#: the shards, or a tree's reduce then broadcast): the scale-out latency ("roce" `ar_latency_us` + `ar_hop_us` per
#: extra domain) is fitted on one exchange, DeepEP's internode dispatch or combine (objectives/calibration/network.py)
OUT_ALLREDUCE_PHASES = 2.0

#: ranks up to which the latency grows by one hop per rank (a ring: the range the factors were fitted on, one node);
#: beyond, by a tree's depth, log2(n), scaled to meet the ring's hops at this size
RING_RANKS = 8


def latency_hops(n: Num) -> Num:
    """Hops of an all-reduce's latency over `n` GPUs: n - 1 up to `RING_RANKS` (ring), then
    (RING_RANKS - 1) x log2(n) / log2(RING_RANKS) (tree/NVLS: NCCL leaves the ring for small messages at large
    rank counts, e.g. 64 GPUs of one NVL72 domain)."""
    n = np.maximum(n, 1.0)
    return np.where(n <= RING_RANKS, n - 1.0, (RING_RANKS - 1.0) * np.log2(n) / np.log2(RING_RANKS))


def allreduce_latency_s(n: Num, lat_us: Num, hop_us: Num) -> Num:
    """Latency term of one all-reduce over `n` GPUs, s (0 for n == 1)."""
    return np.where(n > 1, (lat_us + hop_us * latency_hops(n)) * 1e-6, 0.0)


def allreduce_s_per_byte(n: Num, link_gbs: Num, bw_eff: Num) -> Num:
    """Bandwidth term of an all-reduce over `n` GPUs, s per byte of message (ring factor 2(n-1)/n)."""
    return np.where(n > 1, 2.0 * (n - 1) / np.maximum(n, 1) / (link_gbs * 1e9 * bw_eff), 0.0)


def allreduce_s(msg_bytes: Num, n: Num, link_gbs: Num, lat_us: Num, hop_us: Num, bw_eff: Num) -> Num:
    """Time of one all-reduce of `msg_bytes` over `n` GPUs, s."""
    return allreduce_latency_s(n, lat_us, hop_us) + msg_bytes * allreduce_s_per_byte(n, link_gbs, bw_eff)


def alltoall_s_per_byte(n: Num, link_gbs: Num, bw_eff: Num) -> Num:
    """Bandwidth term of an all-to-all over `n` GPUs, s per byte of each GPU's payload."""
    return np.where(n > 1, (n - 1) / np.maximum(n, 1) / (link_gbs * 1e9 * bw_eff), 0.0)


def p2p_s_per_byte(link_gbs: Num, bw_eff: Num) -> Num:
    """Seconds per byte of a point-to-point transfer between pipeline stages."""
    return 1.0 / (link_gbs * 1e9 * bw_eff)


def remote_copies(domains: Num, fanout: Num) -> Num:
    """Copies of a token sent over the network in one all-to-all over `domains` scale-up domains (nodes) that each
    hold an equal share of its `fanout` destinations (MoE dispatch: top_k experts), a domain receiving one copy if any
    of them is there (DeepEP-style per-node deduplication): (k - 1) (1 - (1 - 1/k)^fanout) on average."""
    k = np.asarray(domains, dtype=float)
    return (k - 1.0) * (1.0 - np.power(1.0 - 1.0 / k, fanout))


@dataclass
class Links:
    """The two links of a deployment, per configuration (arrays broadcast): the scale-up domain of `domain` GPUs
    at `up_gbs` GB/s per GPU per direction, and the scale-out network at `out_gbs` (0: none known)."""

    domain: Num           # GPUs per scale-up domain
    up_gbs: Num           # scale-up bandwidth per GPU per direction, GB/s
    up_lat_us: Num        # all-reduce latency on the scale-up link, µs
    up_hop_us: Num        # ... per extra GPU, µs
    up_eff: Num           # achieved fraction of up_gbs
    out_gbs: Num          # scale-out bandwidth per GPU per direction, GB/s (0: no network known)
    out_lat_us: Num       # all-reduce latency on the scale-out network, µs
    out_hop_us: Num       # ... per extra domain, µs
    out_eff: Num          # achieved fraction of out_gbs

    def _out_gbs(self) -> Num:
        # a deployment beyond one domain without a known network is marked not runnable elsewhere
        # (`spans_without_network`); its figures are priced as if the network ran at the scale-up rate
        return np.where(np.asarray(self.out_gbs) > 0, self.out_gbs, self.up_gbs)

    def split(self, n: Num) -> tuple[Num, Num]:
        """(GPUs of a group of `n` inside one domain, domains the group spans)."""
        inner = np.minimum(n, self.domain)
        return inner, np.ceil(n / inner)

    def allreduce(self, n: Num) -> tuple[Num, Num]:
        """(latency s, s per byte of message) of a hierarchical all-reduce over `n` GPUs."""
        inner, k = self.split(n)
        lat = (allreduce_latency_s(inner, self.up_lat_us, self.up_hop_us)
               + OUT_ALLREDUCE_PHASES * allreduce_latency_s(k, self.out_lat_us, self.out_hop_us))
        per_byte = (allreduce_s_per_byte(inner, self.up_gbs, self.up_eff)
                    + allreduce_s_per_byte(k, self._out_gbs(), self.out_eff) / inner)
        return lat, per_byte

    def allreduce_out(self, n: Num) -> tuple[Num, Num]:
        """The scale-out stage alone of `allreduce` (latency s, s per byte of message): 0 inside one domain."""
        inner, k = self.split(n)
        return (OUT_ALLREDUCE_PHASES * allreduce_latency_s(k, self.out_lat_us, self.out_hop_us),
                allreduce_s_per_byte(k, self._out_gbs(), self.out_eff) / inner)

    def alltoall(self, n: Num, fanout: Num = 1.0) -> tuple[Num, Num]:
        """(extra latency s beyond the scale-up one, s per byte of one token's activation) of an all-to-all over `n`
        GPUs in which every token goes to `fanout` destinations spread evenly over the GPUs (MoE dispatch: top_k
        experts). Inside its domain a token's copies for the domain's other GPUs cross the scale-up link; a domain
        it must reach elsewhere receives one copy over the network (DeepEP-style per-node deduplication, then
        forwarded on that domain's own scale-up link): (k - 1) (1 - (1 - 1/k)^fanout) copies per token on average
        over k domains. Both links run concurrently: the slower sets the time."""
        inner, k = self.split(n)
        n_ = np.maximum(n, 1.0)
        up = np.where(n > 1, fanout * (inner - 1.0) / n_ / (self.up_gbs * 1e9 * self.up_eff), 0.0)
        remote = remote_copies(k, fanout)
        out = remote / (self._out_gbs() * 1e9 * self.out_eff)
        return allreduce_latency_s(k, self.out_lat_us, self.out_hop_us), np.maximum(up, out)

    def alltoall_out(self, n: Num, fanout: Num = 1.0) -> tuple[Num, Num]:
        """What spanning domains adds to an all-to-all over `n` (latency s, s per byte of one token's activation)
        beyond the same all-to-all among the `inner` GPUs of one domain (what a measured table prices): 0 inside one
        domain."""
        inner, k = self.split(n)
        lat, per_byte = self.alltoall(n, fanout)
        inside = fanout * alltoall_s_per_byte(inner, self.up_gbs, self.up_eff)
        return lat, np.where(k > 1, np.maximum(per_byte - inside, 0.0), 0.0)

    def pipeline(self, stage_gpus: Num, pp: Num) -> tuple[Num, Num]:
        """(boundaries inside a domain, boundaries crossing the network) of `pp` stages of `stage_gpus` GPUs each,
        placed on consecutive GPUs: the deployment spans ceil(stage_gpus x pp / domain) domains."""
        n_domains = np.ceil(stage_gpus * pp / self.domain)
        cross = np.minimum(pp - 1.0, n_domains - 1.0)
        return pp - 1.0 - cross, cross

    def p2p(self, stage_gpus: Num, pp: Num) -> tuple[Num, Num]:
        """(latency s, s per byte) of all pp - 1 stage-to-stage transfers of one forward, each on its link."""
        inside, cross = self.pipeline(stage_gpus, pp)
        lat = (inside * allreduce_latency_s(2.0, self.up_lat_us, self.up_hop_us)
               + cross * allreduce_latency_s(2.0, self.out_lat_us, self.out_hop_us))
        per_byte = inside * p2p_s_per_byte(self.up_gbs, self.up_eff) + cross * p2p_s_per_byte(self._out_gbs(),
                                                                                               self.out_eff)
        return lat, per_byte

    def spans_without_network(self, n_gpus: Num) -> Num:
        """True where a deployment of `n_gpus` GPUs spans several domains and no scale-out network is known."""
        return (n_gpus > self.domain) & ~(np.asarray(self.out_gbs) > 0)


def gpu_topology(recs: list, index: np.ndarray | None) -> tuple[Num, Num]:
    """(GPUs per scale-up domain, scale-out GB/s per GPU per direction; 0 = none) of each configuration's GPU
    record, from the catalog's systems (`objectives.catalog.system`); records the catalog does not know (a custom
    `GPU`) get one default domain and no network."""
    from objectives.catalog import CatalogError
    from objectives.catalog.systems import DEFAULT_SCALE_UP, system

    def one(g: Any) -> tuple[float, float]:
        try:
            s = system(g.name)
        except CatalogError:
            s = None
        return (float(s.scale_up_gpus), float(s.scale_out_gbs)) if s else (float(DEFAULT_SCALE_UP), 0.0)
    vals = np.array([one(g) for g in recs], dtype=float).reshape(len(recs), 2)
    if index is None:
        return float(vals[0, 0]), float(vals[0, 1])
    return vals[index, 0], vals[index, 1]


def _gpu_topology_by_name(gpu: Any) -> tuple[Num, Num, Num, Num]:
    """(canonical name, GPUs per domain, scale-up GB/s, scale-out GB/s) per entry of a GPU name argument
    (scalar or array), each distinct name looked up once."""
    from objectives import catalog
    arr = np.asarray(gpu, dtype=object)
    uniq, inv = np.unique(arr.ravel().astype(str), return_inverse=True)
    top = catalog.topology(uniq.tolist())
    code = np.array([catalog.gpu(u).name for u in uniq], dtype=object)
    cols = [code[inv], top["scale_up_gpus"][inv], top["scale_up_gbs"][inv], top["scale_out_gbs"][inv]]
    return tuple(c.reshape(arr.shape) if arr.ndim else c[0] for c in cols)  # type: ignore[return-value]


def kv_link_missing(prefill_gpu: Any, decode_gpu: Any) -> str:
    """Why no link moves the KV between a disaggregated deployment's pools on these GPUs, where `kv_transfer_gbs`
    is NaN: the pools do not fit one scale-up domain of one GPU type, and the named GPUs' systems have no
    scale-out network in the catalog."""
    from objectives import catalog
    names = list(dict.fromkeys(catalog.gpu(g).name for g in (prefill_gpu, decode_gpu)))
    top = catalog.topology(names)
    alone = [g for g, o in zip(names, top["scale_out_gbs"]) if not o > 0]
    return (f"KV transfer: the prefill pool ({catalog.gpu(prefill_gpu).name}) and the decode pool "
            f"({catalog.gpu(decode_gpu).name}) do not fit one scale-up domain of one GPU type, and "
            f"{' and '.join(alone)} {'has' if len(alone) == 1 else 'have'} no scale-out network in the catalog "
            f"(objectives/data/systems/systems.toml): no link moves the KV between them")


def kv_transfer_gbs(prefill_gpu: Any, prefill_tp: Num, decode_gpu: Any, decode_tp: Num, total_gpus: Num) -> Num:
    """GB/s that move one prompt's KV cache from a prefill worker to a decode worker (disaggregated serving), on
    the link between the pools' GPUs: the scale-up link (per GPU x the smaller TP group, each GPU sending its own
    shard) when the whole deployment of `total_gpus` GPUs fits one scale-up domain of one GPU type, else the
    scale-out network per GPU x the smaller TP group. NaN where the pools cross domains and a GPU's system has no
    scale-out network. GPU arguments: catalog names (or arrays of them); all arguments broadcast."""
    cp, dom_p, up_p, out_p = _gpu_topology_by_name(prefill_gpu)
    cd, dom_d, up_d, out_d = _gpu_topology_by_name(decode_gpu)
    k = np.minimum(prefill_tp, decode_tp)
    inside = (cp == cd) & (np.asarray(total_gpus) <= np.minimum(dom_p, dom_d))
    out = np.minimum(out_p, out_d)
    return np.where(inside, np.minimum(up_p, up_d) * k, np.where(out > 0, out * k, np.nan))
