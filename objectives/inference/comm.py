"""Collectives over the scale-up link: all-reduce (TP), all-to-all (EP), point-to-point (PP).

Model: time = latency + bytes x algorithm factor / (link bandwidth x efficiency).
- all-reduce over n GPUs: ring/tree bandwidth factor 2 (n - 1) / n; latency = ar_latency_us + ar_hop_us x (n - 1),
  so small (decode) messages are latency-bound and large (prefill) ones bandwidth-bound.
- all-to-all over n GPUs: each GPU sends (n - 1) / n of its tokens' activations.
- point-to-point between pipeline stages: one activation transfer.
Bandwidths are per GPU per direction (GB/s, as in `GPU.link_bw_gbs`). All arguments broadcast.
"""
from __future__ import annotations

from typing import Any

import numpy as np

Num = Any


def allreduce_latency_s(n: Num, lat_us: Num, hop_us: Num) -> Num:
    """Latency term of one all-reduce over `n` GPUs, s (0 for n == 1)."""
    return np.where(n > 1, (lat_us + hop_us * (n - 1)) * 1e-6, 0.0)


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
