"""The scale-out network factors fitted on DeepEP's internode kernel tables (objectives/calibration/network.py)."""
import numpy as np
import pandas as pd
import pytest

from objectives.calibration import network
from objectives.inference import comm
from objectives.inference.efficiency import default_efficiency, load_efficiency


def _tables(lat_us: float, hop_us: float, eff: float, line_gbs: float, hidden: float = 7168.0,
            top_k: float = 8.0) -> pd.DataFrame:
    """Synthetic internode tables made by the model the fit inverts: a low-latency kernel of 30 µs + 0.2 µs a token
    inside one node, plus 2 x (lat + hop (k - 1)) over k nodes; a normal kernel whose network stage moves each token's
    deduplicated copies at eff x the line rate (plus a fixed 80 µs)."""
    rows = []
    for k in (1, 2, 4, 8):
        for t in (1, 2, 4, 8, 16):
            rows.append(("ll", k, t, 30.0 + 0.2 * t + (2.0 * (lat_us + hop_us * (k - 1)) if k > 1 else 0.0)))
        for t in (256, 1024, 4096, 16384):
            per_tok = (network.remote_copies(k, top_k) * network.token_bytes(hidden) / (eff * line_gbs * 1e9) * 1e6
                       if k > 1 else 0.3)
            rows.append(("normal", k, t, 80.0 + per_tok * t))
    d = pd.DataFrame(rows, columns=["kind", "node_num", "num_token", "t_us"])
    return d.assign(system="h100_sxm", hidden=hidden, top_k=top_k, experts=256.0)


def test_fit_recovers_the_latency_and_share_of_line_rate_it_was_made_with():
    f = network.fit_scale_out(_tables(9.0, 1.5, 0.7, 50.0), 50.0)
    assert f["lat_us"] == pytest.approx(9.0, abs=1e-6)
    assert f["hop_us"] == pytest.approx(1.5, abs=1e-6)
    assert f["eff"] == pytest.approx(0.7, rel=1e-6)
    assert set(f["eff_by_nodes"]) == {2, 4, 8}
    # the same kernel times read as bf16 dispatch need proportionally more of the line
    ratio = network.token_bytes(7168.0, fp8_dispatch=False) / network.token_bytes(7168.0)
    assert f["eff_bf16"][2] == pytest.approx(0.7 * ratio, rel=1e-6)


def test_remote_copies_are_the_closed_forms_per_node_deduplication():
    """The fit counts the network copies as comm.Links.alltoall prices them: one per other node holding any of the
    token's experts (2 nodes, top-8: 1 - 2^-8 copies)."""
    assert network.remote_copies(2, 8) == pytest.approx(1.0 - 0.5 ** 8)
    links = comm.Links(domain=8, up_gbs=450.0, up_lat_us=8.0, up_hop_us=1.0, up_eff=0.7, out_gbs=50.0,
                       out_lat_us=10.0, out_hop_us=1.0, out_eff=1.0)
    _, per_byte = links.alltoall(32, 8.0)
    assert per_byte == pytest.approx(network.remote_copies(4, 8) / 50e9)


def test_an_all_reduce_across_domains_pays_two_exchanges_of_the_network_latency():
    links = comm.Links(domain=8, up_gbs=450.0, up_lat_us=8.0, up_hop_us=1.0, up_eff=0.7, out_gbs=50.0,
                       out_lat_us=10.0, out_hop_us=1.0, out_eff=0.8)
    a2a_lat, _ = links.alltoall(16, 8.0)
    ar_out_lat, _ = links.allreduce_out(16)
    assert a2a_lat == pytest.approx(11e-6)
    assert ar_out_lat == pytest.approx(comm.OUT_ALLREDUCE_PHASES * 11e-6)
    assert links.allreduce_out(8)[0] == 0.0


def test_missing_tables_are_named():
    with pytest.raises(ValueError, match="internode"):
        network.fit_scale_out(pd.DataFrame(), 50.0)
    d = _tables(9.0, 1.5, 0.7, 50.0)
    with pytest.raises(ValueError, match="normal-kernel"):
        network.fit_scale_out(d[d["kind"] == "ll"], 50.0)


def test_shipped_scale_out_factors_are_the_fit_on_the_installed_tables():
    """The "roce" link's shipped values (defaults and efficiency.json) are what `python -m objectives.calibration
    network` fits on aiconfigurator-core's internode DeepEP tables (skipped without the package)."""
    tables = network.internode_tables()
    if tables.empty:
        pytest.skip("aiconfigurator-core with internode DeepEP tables not installed")
    f = network.fit_scale_out(tables[tables["system"] == "h100_sxm"], 50.0)
    for eff in (default_efficiency(), load_efficiency()):
        assert eff["ar_latency_us"]["roce"] == pytest.approx(f["lat_us"], abs=0.05)
        assert eff["ar_hop_us"]["roce"] == pytest.approx(f["hop_us"], abs=0.005)
        assert eff["ar_bw_eff"]["roce"] == pytest.approx(f["eff"], abs=0.005)
    # at 2 and 4 nodes bf16 dispatch would need more than the NIC's line rate: the kernels dispatched FP8
    assert f["eff_bf16"][2] > 1.0 and f["eff_bf16"][4] > 1.0
    assert np.all(np.array(list(f["eff_by_nodes"].values())) < 1.0)
