"""Name normalization and close-match suggestions for catalog lookups."""
from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping

_NON_ALNUM = re.compile(r"[^0-9a-z]+")

#: Suffixes of Hugging Face model ids that do not change the shapes (fine-tunes, packaging), stripped on lookup.
_MODEL_SUFFIXES = ("instruct", "thinking", "chat", "hf", "base", "it")
_DATE_SUFFIX = re.compile(r"[-_](?:\d{4})$")


def normalize(name: str) -> str:
    """Lower-case `name` and drop every non-alphanumeric character: "H100_SXM-80GB" -> "h100sxm80gb"."""
    return _NON_ALNUM.sub("", str(name).lower())


def model_name_candidates(name: str) -> list[str]:
    """Normalized keys to try for a model name, most specific first.

    "meta-llama/Meta-Llama-3.1-70B-Instruct" -> the full id, then "Meta-Llama-3.1-70B-Instruct",
    "Llama-3.1-70B-Instruct", and the same without the "-Instruct" suffix (also "-Chat", "-hf", "-Base",
    "-it", "-Thinking" and a trailing 4-digit release date such as "-2507"), which fine-tunes share with the base
    shapes.
    """
    name = str(name).strip()
    out: list[str] = [name]
    if "/" in name:
        out.append(name.rsplit("/", 1)[1])
    for n in list(out):
        if n.lower().startswith("meta-"):
            out.append(n[5:])
    for n in list(out):
        stripped = n
        while True:
            before = stripped
            stripped = _DATE_SUFFIX.sub("", stripped)
            for suf in _MODEL_SUFFIXES:
                if stripped.lower().endswith(("-" + suf, "_" + suf)):
                    stripped = stripped[: -len(suf) - 1]
            if stripped == before:
                break
        if stripped != n:
            out.append(stripped)
    base = distill_base(name)
    if base is not None:   # a distilled model has its student's shapes: the base it was distilled into
        out.append(base)
    seen: dict[str, None] = {}
    for n in out:
        seen.setdefault(normalize(n), None)
    return list(seen)


#: "<teacher>-Distill-<student>" checkpoints whose student base the publisher names: the distill is a fine-tune of
#: that base (its config.json is the base's architecture), so it has the base's shapes. Source: the
#: deepseek-ai/DeepSeek-R1 model card, "DeepSeek-R1-Distill Models" table (Base Model column).
DISTILL_BASES = {
    "deepseekr1distillqwen15b": "Qwen2.5-Math-1.5B",
    "deepseekr1distillqwen7b": "Qwen2.5-Math-7B",
    "deepseekr1distillllama8b": "Llama-3.1-8B",
    "deepseekr1distillqwen14b": "Qwen2.5-14B",
    "deepseekr1distillqwen32b": "Qwen2.5-32B",
    "deepseekr1distillllama70b": "Llama-3.3-70B-Instruct",
}
_DISTILL = re.compile(r"[-_]Distill[-_](.+)$", re.IGNORECASE)


def distill_base(name: str) -> str | None:
    """The base model a distilled checkpoint was trained from (`DISTILL_BASES`, by its repository name less any
    suffix `model_name_candidates` strips), None where `name` is no distill it knows."""
    repo = str(name).strip().rsplit("/", 1)[-1]
    if not _DISTILL.search(repo):
        return None
    key = normalize(repo)
    return next((b for k, b in DISTILL_BASES.items() if key == k or key.startswith(k)), None)


def distill_student(name: str) -> str | None:
    """What follows "-Distill-" in a distilled checkpoint's name (the student: "Llama-70B", "Qwen-32B"), its
    architecture rather than the teacher's before it; None where the name has no "-Distill-"."""
    m = _DISTILL.search(str(name).strip().rsplit("/", 1)[-1])
    return m.group(1) if m else None


#: Checkpoint-id suffixes that name a weight format (quantized releases of a known architecture), matched at the
#: end of the id, case-insensitively: pattern -> (weight dtype, scheme). "FP8" alone depends on the publisher (see
#: `quant_from_suffix`).
#: Red Hat's (Neural Magic's) releases put "quantized." before the tag ("...-Instruct-quantized.w4a16").
_QUANT_SUFFIX = re.compile(
    r"[-_](?:quantized[._-])?(nvfp4|mxfp4|fp4|fp8(?:[-_](?:dynamic|static(?:[-_]per[-_]?tensor)?|block|kv))?|"
    r"awq(?:[-_]int4)?|gptq(?:[-_]int[48])?|bnb[-_][48]bit|w4a16|w8a8|w8a16|int4|int8)$", re.IGNORECASE)
_QUANT_BY_TAG = {
    "nvfp4": ("fp4", "nvfp4"), "mxfp4": ("fp4", "mxfp4"), "fp4": ("fp4", "nvfp4"), "awq": ("int4", "int4_awq"),
    "gptq": ("int4", "int4_gptq"), "gptqint4": ("int4", "int4_gptq"), "gptqint8": ("int8", "int8_gptq"),
    "awqint4": ("int4", "int4_awq"), "bnb4bit": ("int4", "bnb_4bit"), "bnb8bit": ("int8", "bnb_int8"),
    "w4a16": ("int4", "int4_group"), "w8a8": ("int8", "int8_sq"), "w8a16": ("int8", "int8_wo"),
    "int4": ("int4", "int4_group"),
    "int8": ("int8", "int8_sq"), "fp8dynamic": ("fp8", "fp8_per_channel"), "fp8block": ("fp8", "fp8_block"),
    "fp8static": ("fp8", "fp8_per_tensor"), "fp8staticpertensor": ("fp8", "fp8_per_tensor"),
}


#: A trailing packaging revision of a checkpoint ("nvidia/DeepSeek-R1-0528-FP4-v2"): the same architecture and format
_REVISION_SUFFIX = re.compile(r"[-_]v\d+(?:\.\d+)?$", re.IGNORECASE)


def without_revision(name: str) -> str | None:
    """`name` less a trailing "-v2" / "-v1.5" revision tag, or None where it has none."""
    name = str(name).strip()
    m = _REVISION_SUFFIX.search(name)
    return name[: m.start()] if m and m.start() > 0 else None


def quant_from_suffix(name: str) -> tuple[str, str, str, str, str] | None:
    """(base id, suffix as written, weight dtype, scheme, kv dtype) for an id ending in a weight-format tag, else None.

    "Qwen/Qwen3-235B-A22B-FP8" -> ("Qwen/Qwen3-235B-A22B", "FP8", "fp8", "fp8_block", ""). A bare "FP8" means
    per-tensor scales for NVIDIA's ModelOpt releases ("nvidia/...-FP8", which also ship FP8 KV-cache scales) and
    for Red Hat's / Neural Magic's ("RedHatAI/...-FP8": static per-tensor weights and activations, no KV-cache
    scales), per-channel scales for Meta's ("meta-llama/Llama-3.1-405B-Instruct-FP8": ``fbgemm_fp8``) and 128x128
    block scales otherwise (Qwen, DeepSeek, GLM, MiniMax releases). NVIDIA's NVFP4 releases carry FP8 KV-cache
    scales as well, and so does any "-FP8-KV" release.
    """
    name = str(name).strip()
    m = _QUANT_SUFFIX.search(name)
    if m is None:
        return None
    tag = normalize(m.group(1))
    publisher = name.split("/", 1)[0].lower() if "/" in name else ""
    nvidia = publisher == "nvidia"
    if tag in ("fp8", "fp8kv"):
        dtype, scheme = ("fp8", "fp8_per_tensor") if publisher in _PER_TENSOR_FP8 else ("fp8", "fp8_block")
        if publisher == "meta-llama":  # Meta's own FP8 releases: fbgemm_fp8 (per-channel weights)
            scheme = "fp8_per_channel"
    else:
        dtype, scheme = _QUANT_BY_TAG[tag]
    kv = "fp8" if (nvidia and dtype in ("fp8", "fp4")) or tag == "fp8kv" else ""
    return name[: m.start()], m.group(1), dtype, scheme, kv


#: publishers whose bare "-FP8" releases hold per-tensor scales: NVIDIA's ModelOpt FP8, Red Hat's (formerly Neural
#: Magic's) AutoFP8 / llm-compressor static FP8 (their per-channel releases say "-FP8-dynamic")
_PER_TENSOR_FP8 = ("nvidia", "redhatai", "neuralmagic")


def close_matches(name: str, keys: Mapping[str, str], n: int = 5) -> list[str]:
    """Display names of up to `n` entries whose normalized key (or display name) is close to `name`.

    `keys` maps normalized key -> display (canonical) name; several keys may share a display name.
    """
    query = normalize(name)
    hits = difflib.get_close_matches(query, list(keys), n=3 * n, cutoff=0.5)
    # substring matches ("h100" in "h100sxm80gb") are useful even when difflib ranks them low
    hits += [k for k in keys if query and (query in k or k in query)]
    out: list[str] = []
    for k in hits:
        display = keys[k]
        if display not in out:
            out.append(display)
        if len(out) == n:
            break
    return out


#: the vendor a driver prints before the product (nvidia-smi "NVIDIA H100 80GB HBM3", "Tesla V100-SXM2-32GB";
#: rocm-smi / torch "AMD Instinct MI300X"; Intel's "Intel(R) Arc(TM) Pro B60 Graphics"), and trademark marks
_DEVICE_VENDOR = re.compile(r"^\s*(?:NVIDIA|AMD|Tesla|Intel)(?:\((?:R|TM)\))?\s+", re.IGNORECASE)
_DEVICE_MARKS = re.compile(r"\((?:R|TM)\)", re.IGNORECASE)
#: one word a driver prints after the product: the memory it counts ("80GB", "144G"), its type ("HBM3", "HBM3e"),
#: "Graphics"
_DEVICE_TAIL_WORD = re.compile(r"^(?:(\d+(?:\.\d+)?)\s*GB?|(HBM\w*)|Graphics)$", re.IGNORECASE)


def device_name_candidates(name: str) -> list[tuple[str, float | None, bool]]:
    """Names to look a driver's device name up by, after the name itself: without its vendor and marks
    ("NVIDIA H100 80GB HBM3" -> "H100 80GB HBM3"), then without the words after the product ("H100"), each with
    the memory those words name (GB, None where none) and whether they name a memory type (HBM...). Empty where
    `name` carries neither a vendor nor such words."""
    bare = " ".join(_DEVICE_MARKS.sub(" ", _DEVICE_VENDOR.sub("", str(name))).split())
    words = bare.split(" ")
    size: float | None = None
    hbm = False
    while len(words) > 1:
        m = _DEVICE_TAIL_WORD.match(words[-1])
        if m is None:
            break
        if m.group(1) is not None:
            size = float(m.group(1))
        hbm = hbm or m.group(2) is not None
        words.pop()
    out: list[tuple[str, float | None, bool]] = [(bare, None, False)] if bare != str(name).strip() else []
    product = " ".join(words)
    if product != bare:
        out.append((product, size, hbm))
    return out


def unknown_name_message(kind: str, name: object, keys: Mapping[str, str], known: Iterable[str], hint: str) -> str:
    """The message of an unknown-name error: the bad value, close matches, and where to find all names. A
    distilled model ("DeepSeek-R1-Distill-Qwen-32B") is matched by its student's name, whose architecture it has
    (the teacher's, "DeepSeek-R1", would mislead), and its base named where `DISTILL_BASES` knows it."""
    student = distill_student(str(name)) if kind == "model" else None
    matches = close_matches(student or str(name), keys)
    known = list(known)
    msg = f"unknown {kind} {name!r}"
    if student is not None:
        base = distill_base(str(name))
        msg += (f" (a distill into {base}, which the catalog lacks: its shapes are {base}'s, not the teacher's; give "
                f"the path of its config.json)" if base else f" (a distill: its shapes are its student's, "
                f"{student!r}, not the teacher's; give the path of its config.json)")
    if matches:
        msg += f"; close matches{' by its student' if student else ''}: {', '.join(matches)}"
    msg += f". {len(known)} known (see {hint})"
    if len(known) <= 40:
        msg += f": {', '.join(known)}"
    return msg
