"""Parallelism: tensor (TP), pipeline (PP), data (DP, replicas) and expert (EP) parallel degrees.

Rules (the ones `objectives.inference` applies, so no point of the space is rejected by the cost model):

- TP divides the attention heads; for grouped-query attention TP either divides the KV heads or is a multiple
  of them (``tp >= n_kv_heads``: KV heads are replicated, as vLLM and TensorRT-LLM do); DeepSeek-V4's TP also
  divides its output-projection groups (``o_groups``: 8 on Flash, 16 on Pro).
- PP divides the layers (every stage holds the same number of layers).
- EP (mixture-of-experts models only) divides the TP degree: the experts are spread over the GPUs of the TP group
  (``tp % ep == 0``; ``tp * attn_dp`` in `spaces.llm_serving`), as the inference model documents. By default
  the space offers the degrees that divide the experts; an ``ep=`` list may name any degree up to the experts
  (one that does not divide them runs with redundant expert copies, as engines deploy wide EP).
- TP x PP x DP GPUs in all: ``spaces.llm_serving`` ties the product to ``n_gpus``; on its own this space only
  bounds it by ``max_gpus``.
"""
from __future__ import annotations

from collections.abc import Sequence

import dse
from dse import SpaceError
from dse.space import Param
from objectives import catalog
from objectives.catalog import Model

from .hardware import check_count


def model_record(model: str | Model) -> Model:
    """The catalog record of a model name, alias or Hugging Face id (or a Model record as is)."""
    return model if isinstance(model, Model) else catalog.model(model)


def tp_ok(m: Model, tp: int) -> bool:
    """True when ``tp`` splits the attention heads of ``m`` (module rules; DeepSeek-V4: and its output groups), as
    the cost model's rule (`objectives.inference.resolve.tp_invalid`) says."""
    from objectives.inference.resolve import tp_invalid
    return not bool(tp_invalid(m.n_heads, m.n_kv_heads, tp, m.o_groups if m.is_compressed_attention else 0,
                               m.swa_n_kv_heads))


def tp_choices(m: Model, max_gpus: int) -> list[int]:
    """Every valid TP degree 1..max_gpus for ``m``."""
    return [t for t in range(1, max_gpus + 1) if tp_ok(m, t)]


def pp_choices(m: Model, max_gpus: int) -> list[int]:
    """Every PP degree 1..max_gpus that divides the layers of ``m``."""
    return [p for p in range(1, max_gpus + 1) if m.n_layers % p == 0]


def ep_choices(m: Model, max_gpus: int, uneven: bool = False) -> list[int]:
    """Every EP degree 1..max_gpus that divides the experts of ``m`` (``[1]`` for a dense model): a space's
    default. ``uneven``: every degree up to the experts, what a user may ask for (an EP size that does not divide
    the experts runs with redundant expert copies, `objectives.inference.resolve.expert_slots`)."""
    if not m.is_moe:
        return [1]
    return [e for e in range(1, min(max_gpus, m.n_experts) + 1) if uneven or m.n_experts % e == 0]


def _pick(label: str, given: Sequence[int] | None, valid: list[int], rule: str, max_gpus: int) -> list[int]:
    if given is None:
        return valid
    vals = list(dict.fromkeys(check_count(f"{label} value", v) for v in given))
    bad = [v for v in vals if v not in valid]
    if bad or not vals:
        raise SpaceError(f"{label}={list(given)!r}: {bad or 'empty'} not allowed ({rule}); valid up to "
                         f"max_gpus={max_gpus}: {valid}")
    return vals


def pick_tp(m: Model, max_gpus: int, given: Sequence[int] | None = None, label: str = "tp") -> list[int]:
    """The TP degrees ``given`` as argument ``label`` (None: every valid one, `tp_choices`), each an integer that
    splits the heads of ``m`` up to ``max_gpus``; SpaceError naming a bad one and the rule."""
    return _pick(label, given, tp_choices(m, max_gpus), f"must divide the {m.n_heads} attention heads and divide "
                 f"or be a multiple of the {m.n_kv_heads} KV heads", max_gpus)


def pick_pp(m: Model, max_gpus: int, given: Sequence[int] | None = None, label: str = "pp") -> list[int]:
    """The PP degrees ``given`` as argument ``label`` (None: every valid one, `pp_choices`), each an integer that
    divides the layers of ``m`` up to ``max_gpus``; SpaceError naming a bad one and the rule."""
    return _pick(label, given, pp_choices(m, max_gpus), f"must divide the {m.n_layers} layers", max_gpus)


def parallelism(model: str | Model, max_gpus: int = 8, *, tp: Sequence[int] | None = None,
                pp: Sequence[int] | None = None, dp: bool | Sequence[int] = True,
                ep: Sequence[int] | None = None) -> dse.Space:
    """Space of ``tp``, ``pp``, ``dp`` (unless ``dp=False``) and, for a MoE model, ``ep``.

    ``tp``/``pp``/``ep`` restrict the degrees (each must obey the module rules); ``dp`` True gives replicas
    1..max_gpus, a list gives those counts. Constraint: TP x PP x DP <= max_gpus (and ``tp % ep == 0``).
    """
    m = model_record(model)
    check_count("max_gpus", max_gpus)
    params: dict[str, Param] = {
        "tp": dse.Categorical(pick_tp(m, max_gpus, tp)),
        "pp": dse.Categorical(pick_pp(m, max_gpus, pp)),
    }
    cons = []
    product = "tp * pp"
    if dp is not False:
        counts = list(range(1, max_gpus + 1)) if dp is True else [check_count("dp value", d) for d in dp]
        if not counts or max(counts) > max_gpus:
            raise SpaceError(f"dp={dp!r} must be True, False or counts in 1..max_gpus={max_gpus}")
        params["dp"] = dse.Categorical(sorted(set(counts)))
        product = "tp * pp * dp"
    if m.is_moe:
        params["ep"] = dse.Categorical(ep_choices(m, max_gpus) if ep is None else
                                       _pick("ep", ep, ep_choices(m, max_gpus, uneven=True),
                                             f"at most the {m.n_experts} experts", max_gpus))
        cons.append("tp % ep == 0")
    elif ep is not None and list(ep) != [1]:
        raise SpaceError(f"ep={list(ep)!r}: expert parallelism needs a mixture-of-experts model; {m.name} is dense")
    cons.insert(0, f"{product} <= {max_gpus}")
    return dse.Space(params, constraints=cons)
