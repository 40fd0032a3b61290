"""Regenerate the shipped engine flag lists (objectives/data/engine_flags/*.json) from an engine's source.

The launch commands of :mod:`objectives.deploy` are checked against these lists. Each list is read statically
(``ast``, nothing is imported or run) from the argument-parser source of one engine release: a wheel file or an
unpacked source tree. Three parser styles are read:

- ``argparse``: every ``add_argument(...)`` call's option strings (string literals, and f-strings with their
  placeholders empty: sglang-router's ``f"--{prefix}policy"`` is ``--policy``), ``choices=`` when it is a literal
  list or a module-level list constant, a literal ``nargs=`` (the routers' ``--prefill URL [BOOTSTRAP_PORT]``),
  and whether the action takes no value (``store_true``/``store_false``, ``BooleanOptionalAction``, which also
  accepts ``--no-FLAG``).
- ``dataclass``: fields of the named classes become ``--field-name`` (vLLM's ``FrontendArgs``; SGLang's
  ``ServerArgs`` with ``A[T, Arg(aliases=..., choices=..., no_cli=...)]`` annotations; bool fields are switches,
  ``Literal[...]`` types give the choices).
- ``click``: ``@click.option(...)`` decorators of the named command functions (TensorRT-LLM's ``trtllm-serve``).

Usage (the recipe of each shipped list is in RECIPES; a recipe names the files of one command):

    python -m objectives.deploy.extract_flags vllm-0.24.0 path/to/vllm-0.24.0-...whl
    python -m objectives.deploy.extract_flags sglang-0.5.14 path/to/sglang-src/ --commit <sha>
"""
from __future__ import annotations

import argparse
import ast
import json
import sys
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DATA_DIR = Path(__file__).resolve().parent.parent / "data" / "engine_flags"


@dataclass(frozen=True)
class Part:
    """One source file read in one style. ``classes``: dataclass classes (style "dataclass") or command functions
    (style "click"); ``literal_choices``: flag -> (file, name of a module-level ``Literal[...]`` alias)."""

    file: str
    style: str = "argparse"
    classes: tuple[str, ...] = ()
    literal_choices: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    config_dirs: tuple[str, ...] = ()   # argparse: where the classes of ``x = get_kwargs(Cls)`` are defined
    annotated_only: bool = False        # dataclass: only ``A[T, ...]`` fields are flags (SGLang's ServerArgs)


@dataclass(frozen=True)
class Recipe:
    """How one shipped list is built: engine, version, package, repository, and the parts of each command."""

    engine: str
    version: str
    package: str
    repository: str
    commands: Mapping[str, tuple[Part, ...]]


def _vllm_recipe(version: str) -> Recipe:
    """The recipe of a vLLM release from 0.24 on (`vllm serve`'s engine, config and front-end arguments; `vllm bench
    serve`'s and its datasets' package)."""
    return Recipe("vllm", version, f"vllm=={version}", "vllm-project/vllm", {
        "vllm serve": (
            Part("vllm/engine/arg_utils.py", config_dirs=("vllm/config/",), literal_choices={
                "--kv-cache-dtype": ("vllm/config/cache.py", "CacheDType"),
                "--quantization": ("vllm/model_executor/layers/quantization/__init__.py", "QuantizationMethods")}),
            Part("vllm/entrypoints/openai/cli_args.py"),
            Part("vllm/entrypoints/openai/cli_args.py", "dataclass", ("BaseFrontendArgs", "FrontendArgs")),
            Part("vllm/entrypoints/cli/serve.py"),
        ),
        "vllm bench serve": (
            Part("vllm/benchmarks/serve.py"),
            Part("vllm/benchmarks/datasets/datasets.py"),
        ),
    })


RECIPES: dict[str, Recipe] = {
    "vllm-0.26.0": _vllm_recipe("0.26.0"),
    "vllm-0.24.0": _vllm_recipe("0.24.0"),
    "vllm-0.14.0": Recipe("vllm", "0.14.0", "vllm==0.14.0", "vllm-project/vllm", {
        "vllm serve": (
            Part("vllm/engine/arg_utils.py", config_dirs=("vllm/config/",), literal_choices={
                "--kv-cache-dtype": ("vllm/config/cache.py", "CacheDType"),
                "--quantization": ("vllm/model_executor/layers/quantization/__init__.py", "QuantizationMethods")}),
            Part("vllm/entrypoints/openai/cli_args.py"),
            Part("vllm/entrypoints/openai/cli_args.py", "dataclass", ("FrontendArgs",)),
            Part("vllm/entrypoints/cli/serve.py"),
        ),
        "vllm bench serve": (
            Part("vllm/benchmarks/serve.py"),
            Part("vllm/benchmarks/datasets.py"),
        ),
    }),
    "sglang-0.5.14": Recipe("sglang", "0.5.14", "sglang==0.5.14", "sgl-project/sglang", {
        "python -m sglang.launch_server": (
            Part("sglang/srt/server_args.py", "dataclass", ("ServerArgs",), annotated_only=True),
            Part("sglang/srt/server_args.py"),
        ),
        "python -m sglang.bench_serving": (Part("sglang/bench_serving.py"),),
    }),
    "sglang-0.5.10": Recipe("sglang", "0.5.10", "sglang==0.5.10", "sgl-project/sglang", {
        "python -m sglang.launch_server": (Part("sglang/srt/server_args.py"),),
        "python -m sglang.bench_serving": (Part("sglang/bench_serving.py"),),
    }),
    "sglang-router-0.3.2": Recipe("sglang-router", "0.3.2", "sglang-router==0.3.2", "sgl-project/sglang", {
        "python -m sglang_router.launch_router": (Part("sglang_router/router_args.py"),),
    }),
    "vllm-router-0.1.17": Recipe("vllm-router", "0.1.17", "vllm-router==0.1.17", "vllm-project/router", {
        "vllm-router": (Part("vllm_router/router_args.py"),),
    }),
    "trtllm": Recipe("trtllm", "", "", "NVIDIA/TensorRT-LLM", {
        "trtllm-serve": (Part("tensorrt_llm/commands/serve.py", "click", ("serve",)),),
        "trtllm-serve disaggregated": (Part("tensorrt_llm/commands/serve.py", "click", ("disaggregated",)),),
    }),
}


class Source:
    """Files of a wheel (.whl, read in place) or of a directory tree."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"source {str(self.path)!r} does not exist: give a wheel file or a source directory")
        self._zip = zipfile.ZipFile(self.path) if self.path.is_file() else None

    def read(self, name: str) -> str:
        if self._zip is not None:
            try:
                return self._zip.read(name).decode()
            except KeyError:
                raise FileNotFoundError(f"{name} is not in {self.path.name}") from None
        f = self.path / name
        if not f.is_file():
            raise FileNotFoundError(f"{name} is not under {self.path}")
        return f.read_text()

    def python_files(self, folder: str) -> list[str]:
        """The .py files directly in ``folder`` (a path inside the source ending in '/')."""
        if self._zip is not None:
            return sorted(n for n in self._zip.namelist()
                          if n.startswith(folder) and n.endswith(".py") and "/" not in n[len(folder):])
        return sorted(str(f.relative_to(self.path)) for f in (self.path / folder).glob("*.py"))


# --------------------------------------------------------------------------------------------------- AST helpers
def _const_str(node: ast.AST) -> str | None:
    """A string literal, or an f-string with its placeholders left empty."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str))
    return None


def _module_lists(tree: ast.Module) -> dict[str, list[Any]]:
    """Module-level NAME = [literal, ...] (list/tuple of constants) and NAME = Literal[...] assignments."""
    out: dict[str, list[Any]] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            target, value = node.targets[0].id, node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            target, value = node.target.id, node.value
        else:
            continue
        vals = _literal_values(value)
        if vals is not None:
            out[target] = vals
    return out


def _literal_values(node: ast.AST) -> list[Any] | None:
    if isinstance(node, (ast.List, ast.Tuple)):
        vals = [e.value for e in node.elts if isinstance(e, ast.Constant)]
        return vals if len(vals) == len(node.elts) else None
    if isinstance(node, ast.Subscript) and _name(node.value) == "Literal":
        sl = node.slice
        elts = sl.elts if isinstance(sl, ast.Tuple) else [sl]
        vals = [e.value for e in elts if isinstance(e, ast.Constant)]
        return vals if len(vals) == len(elts) else None
    return None


def _name(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def _choices(node: ast.AST | None, consts: Mapping[str, list[Any]]) -> list[Any] | None:
    if node is None:
        return None
    vals = _literal_values(node)
    if vals is not None:
        return vals
    if isinstance(node, ast.Name) and node.id in consts:
        return list(consts[node.id])
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):   # CHOICES + ["x"]
        a, b = _choices(node.left, consts), _choices(node.right, consts)
        return a + b if a is not None and b is not None else None
    return None


def _kw(call: ast.Call, name: str) -> ast.AST | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


class Flags:
    """Flag names with what is known of them: takes no value (switch), accepts --no-FLAG, choices, nargs, the type
    its value is read as ("int", "float" or "json"; absent: a string) and, for JSON of a config class, its fields
    (json_keys)."""

    def __init__(self) -> None:
        self.flags: dict[str, dict[str, Any]] = {}

    def add(self, names: Iterable[str], *, switch: bool | None = None, negatable: bool = False,
            choices: list[Any] | None = None, nargs: int | str | None = None, value_type: str | None = None,
            json_keys: list[str] | None = None) -> None:
        names = [n for n in names if n.startswith("-") and len(n) > 1]
        for n in names:
            rec = self.flags.setdefault(n, {})
            if switch is not None:
                rec["switch"] = switch
            if negatable and n.startswith("--"):
                rec["negatable"] = True
            if choices is not None:
                rec["choices"] = [c for c in choices if isinstance(c, (str, int, float, bool))]
            if nargs is not None:
                rec["nargs"] = nargs
            if value_type is not None:
                rec["type"] = value_type
            if json_keys is not None:
                rec["json_keys"] = json_keys

    def to_json(self) -> dict[str, dict[str, Any]]:
        return {k: self.flags[k] for k in sorted(self.flags)}


def _nargs(call: ast.Call) -> int | str | None:
    """An add_argument call's literal ``nargs=`` (an int, "?", "*" or "+"; None: one value, or not a literal)."""
    n = _kw(call, "nargs")
    if isinstance(n, ast.Constant) and isinstance(n.value, (int, str)) and not isinstance(n.value, bool):
        return n.value
    return None


def _action_kind(call: ast.Call) -> tuple[bool | None, bool]:
    """(switch, negatable) from an add_argument call's action=."""
    action = _kw(call, "action")
    if action is None:
        return (None, False)
    s = _const_str(action)
    if s in ("store_true", "store_false", "store_const", "count", "help", "version"):
        return (True, False)
    if _name(action) == "BooleanOptionalAction":
        return (True, True)
    return (None, False)


def class_fields(trees: Iterable[ast.Module]) -> dict[str, dict[str, tuple[ast.AST, dict[str, list[Any]]]]]:
    """Class name -> field name -> (annotation, the module's list/Literal constants), over ``trees``."""
    out: dict[str, dict[str, tuple[ast.AST, dict[str, list[Any]]]]] = {}
    for tree in trees:
        consts = _module_lists(tree)
        for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
            out[cls.name] = {st.target.id: (st.annotation, consts) for st in cls.body
                             if isinstance(st, ast.AnnAssign) and isinstance(st.target, ast.Name)}
    return out


def _type_names(ann: ast.AST) -> set[str]:
    """Names in an annotation (``bool | None`` -> {"bool", "None"}; Optional[bool] -> {"Optional", "bool"})."""
    out = set()
    for n in ast.walk(ann):
        if isinstance(n, ast.Name):
            out.add(n.id)
        elif isinstance(n, ast.Constant) and n.value is None:
            out.add("None")
    return out


_NOT_A_TYPE = {"None", "Optional", "Union", "Annotated", "SkipValidation", "InitVar", "Field"}


def _value_type(ann: ast.AST, classes: Mapping[str, Mapping[str, Any]] | None = None
                ) -> tuple[str | None, list[str] | None]:
    """(type, JSON keys) a parser reads a field's value as, from its annotation: "int" (only int), "float" (float,
    maybe int), "json" (a dict, or a config class of ``classes``, whose fields are the keys); (None, None) for
    strings, Literals, bools, lists and anything else (vLLM's get_kwargs: int -> human_readable_int, float ->
    float, dict / a dataclass -> JSON)."""
    names = _type_names(ann) - _NOT_A_TYPE
    if names & {"str", "Literal", "bool", "list", "List", "tuple", "Tuple", "set", "Callable", "Any"}:
        return None, None
    cls = sorted(n for n in names if n in (classes or {}))
    if cls and classes is not None:
        return "json", sorted(classes[cls[0]])
    if names & {"dict", "Dict"}:
        return "json", None
    if names == {"int"}:
        return "int", None
    if "float" in names and names <= {"int", "float"}:
        return "float", None
    return None, None


def _explicit_type(call: ast.Call, kw: str = "type") -> str | None:
    """An add_argument / click option's literal ``type=``: int, float, json.loads (-> "json"), also wrapped in a
    call (vLLM's ``optional_type(int)``); None otherwise (a string, or not known)."""
    t = _kw(call, kw)
    while isinstance(t, ast.Call) and len(t.args) == 1:
        t = t.args[0]
    if isinstance(t, ast.Attribute) and t.attr == "loads":
        return "json"
    if isinstance(t, ast.Name) and t.id in ("int", "float"):
        return t.id
    return None


def _field_kind(ann: ast.AST, consts: Mapping[str, list[Any]]) -> tuple[bool | None, bool, list[Any] | None]:
    """(switch, negatable, choices) of a config field as vLLM's get_kwargs turns it into an argument: a bool (not
    also a str) is a BooleanOptionalAction; a Literal (or an alias of one) gives the choices."""
    names = _type_names(ann)
    if "bool" in names and "str" not in names:
        return True, True, None
    choices = None
    for n in ast.walk(ann):
        vals = _literal_values(n) if isinstance(n, ast.Subscript) else None
        if vals is not None:
            choices = vals
            break
        if isinstance(n, ast.Name) and n.id in consts:
            choices = list(consts[n.id])
            break
    return False, False, choices


def _kwargs_field(call: ast.Call, kw_vars: Mapping[str, str]) -> tuple[str, str] | None:
    """(class, field) of ``**x_kwargs["field"]`` (or ``**{**x_kwargs["field"], ...}``) where x_kwargs = get_kwargs(Class)."""
    for k in call.keywords:
        if k.arg is not None:
            continue
        v = k.value
        subs = [v] if isinstance(v, ast.Subscript) else [e for e, key in zip(getattr(v, "values", []),
                                                                             getattr(v, "keys", []), strict=False) if key is None]
        for sub in subs:
            if isinstance(sub, ast.Subscript) and isinstance(sub.value, ast.Name) and sub.value.id in kw_vars:
                f = _const_str(sub.slice)
                if f:
                    return kw_vars[sub.value.id], f
    return None


def read_argparse(tree: ast.Module, out: Flags, literal_choices: Mapping[str, list[Any]],
                  fields: Mapping[str, Mapping[str, tuple[ast.AST, Mapping[str, list[Any]]]]] | None = None) -> None:
    consts = _module_lists(tree)
    kw_vars = {n.targets[0].id: _name(n.value.args[0]) for n in ast.walk(tree)
               if isinstance(n, ast.Assign) and len(n.targets) == 1 and isinstance(n.targets[0], ast.Name)
               and isinstance(n.value, ast.Call) and _name(n.value.func) == "get_kwargs" and n.value.args}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _name(node.func) == "add_argument":
            names = [s for s in (_const_str(a) for a in node.args) if s]
            if not names or not names[0].startswith("-"):
                continue
            switch, negatable = _action_kind(node)
            vtype, keys = _explicit_type(node), None
            ref = _kwargs_field(node, kw_vars) if fields else None
            if fields is not None and ref is not None and ref[1] in fields.get(ref[0], {}):
                ann, mod_consts = fields[ref[0]][ref[1]]
                switch, negatable, fch = _field_kind(ann, mod_consts)
                if fch is not None:
                    out.add(names, choices=fch)
                if not switch and fch is None:
                    vtype, keys = _value_type(ann, fields)
            ch = _choices(_kw(node, "choices"), consts)
            for n in names:
                if n in literal_choices:
                    ch = literal_choices[n]
            out.add(names, switch=switch, negatable=negatable, choices=ch, nargs=_nargs(node),
                    value_type=None if switch or ch is not None else vtype, json_keys=keys)


def _unwrap(ann: ast.AST) -> ast.AST:
    """Optional[X] / X | None -> X."""
    if isinstance(ann, ast.Subscript) and _name(ann.value) == "Optional":
        return ann.slice
    if isinstance(ann, ast.BinOp) and isinstance(ann.op, ast.BitOr):
        for side in (ann.left, ann.right):
            if not (isinstance(side, ast.Constant) and side.value is None):
                return side
    return ann


def read_dataclass(tree: ast.Module, classes: tuple[str, ...], out: Flags, annotated_only: bool = False) -> None:
    consts = _module_lists(tree)
    found = set()
    for cls in (n for n in tree.body if isinstance(n, ast.ClassDef) and n.name in classes):
        found.add(cls.name)
        for st in cls.body:
            if not (isinstance(st, ast.AnnAssign) and isinstance(st.target, ast.Name)):
                continue
            if st.target.id.startswith("_") or _name(st.annotation) == "ClassVar" or (
                    isinstance(st.annotation, ast.Subscript) and _name(st.annotation.value) == "ClassVar"):
                continue
            ann, meta = st.annotation, None
            if isinstance(ann, ast.Subscript) and _name(ann.value) in ("A", "Annotated"):
                parts = ann.slice.elts if isinstance(ann.slice, ast.Tuple) else [ann.slice]
                ann = parts[0]
                meta = parts[1] if len(parts) > 1 else None
                if meta is None:
                    continue
            elif annotated_only:
                continue
            name = "--" + st.target.id.replace("_", "-")
            aliases: list[str] = []
            choices = None
            if isinstance(meta, ast.Call) and _name(meta.func) == "Arg":
                no_cli = _kw(meta, "no_cli")
                if isinstance(no_cli, ast.Constant) and no_cli.value is True:
                    continue
                cli = _kw(meta, "cli_name")
                name = _const_str(cli) or name if cli is not None else name
                al = _kw(meta, "aliases")
                aliases = [s for s in (_const_str(e) for e in getattr(al, "elts", [])) if s]
                choices = _choices(_kw(meta, "choices"), consts)
                if _kw(meta, "action") is not None:
                    out.add([name, *aliases], choices=choices, nargs=_nargs(meta))
                    continue
            inner = _unwrap(ann)
            if choices is None:
                choices = _literal_values(inner)
            is_bool = isinstance(inner, ast.Name) and inner.id == "bool"
            # SGLang: bool -> store_true; vLLM's get_kwargs: bool -> BooleanOptionalAction (accepts --no-FLAG)
            negatable = is_bool and meta is None
            nargs = _nargs(meta) if isinstance(meta, ast.Call) else None
            vtype = None if is_bool or choices is not None or nargs is not None else _value_type(inner)[0]
            out.add([name, *aliases], switch=True if is_bool else False, negatable=negatable, choices=choices,
                    nargs=nargs, value_type=vtype)
    missing = set(classes) - found
    if missing:
        raise ValueError(f"classes {sorted(missing)} not found")


def read_click(tree: ast.Module, commands: tuple[str, ...], out: Flags) -> None:
    found = set()
    for fn in (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name in commands):
        found.add(fn.name)
        for dec in fn.decorator_list:
            if isinstance(dec, ast.Call) and _name(dec.func) == "option":
                names = [s for s in (_const_str(a) for a in dec.args) if s and s.startswith("-")]
                flag = _kw(dec, "is_flag")
                ch = None
                t = _kw(dec, "type")
                if isinstance(t, ast.Call) and _name(t.func) in ("Choice", "ChoiceWithAlias") and t.args:
                    ch = _choices(t.args[0], _module_lists(tree))
                switch = bool(isinstance(flag, ast.Constant) and flag.value)
                out.add(names, switch=switch, choices=ch,
                        value_type=None if switch or ch is not None else _explicit_type(dec))
    missing = set(commands) - found
    if missing:
        raise ValueError(f"command functions {sorted(missing)} not found")


def extract(recipe: Recipe, source: Source) -> dict[str, Any]:
    """The flag list document of ``recipe`` read from ``source`` (see the module docstring)."""
    commands: dict[str, Any] = {}
    for cmd, parts in recipe.commands.items():
        flags = Flags()
        for p in parts:
            tree = ast.parse(source.read(p.file))
            lit: dict[str, list[Any]] = {}
            for flag, (f, alias) in p.literal_choices.items():
                vals = _module_lists(ast.parse(source.read(f))).get(alias)
                if vals is None:
                    raise ValueError(f"Literal choices of {flag}: no {alias} in {f}")
                lit[flag] = vals
            if p.style == "argparse":
                trees = [ast.parse(source.read(f)) for d in p.config_dirs for f in source.python_files(d)]
                read_argparse(tree, flags, lit, class_fields(trees) if trees else None)
            elif p.style == "dataclass":
                read_dataclass(tree, p.classes, flags, p.annotated_only)
            elif p.style == "click":
                read_click(tree, p.classes, flags)
            else:
                raise ValueError(f"style {p.style!r}: valid styles are argparse, dataclass, click")
        commands[cmd] = {"files": list(dict.fromkeys(p.file for p in parts)), "flags": flags.to_json()}
    return {"engine": recipe.engine, "version": recipe.version, "package": recipe.package,
            "repository": recipe.repository, "commands": commands}


def main(argv: list[str] | None = None) -> int:
    """CLI: write objectives/data/engine_flags/<recipe>.json (or -o) from a wheel or source tree."""
    ap = argparse.ArgumentParser(prog="python -m objectives.deploy.extract_flags", description=__doc__.splitlines()[0])
    ap.add_argument("recipe", choices=sorted(RECIPES))
    ap.add_argument("source", help="the engine's wheel (.whl) or an unpacked source tree")
    ap.add_argument("--version", help="release of the source (required for recipes without one, e.g. trtllm)")
    ap.add_argument("--commit", default="", help="repository commit of the source")
    ap.add_argument("--note", default="", help="where the source came from, recorded in the list")
    ap.add_argument("-o", "--output", help="output file (default: objectives/data/engine_flags/<engine>-<version>.json)")
    args = ap.parse_args(argv)
    recipe = RECIPES[args.recipe]
    if args.version:
        recipe = Recipe(recipe.engine, args.version, recipe.package or f"{recipe.engine}=={args.version}",
                        recipe.repository, recipe.commands)
    if not recipe.version:
        ap.error(f"recipe {args.recipe!r} names no release: pass --version")
    src = Source(args.source)
    doc = extract(recipe, src)
    doc["commit"] = args.commit
    doc["source"] = args.note or (f"wheel {src.path.name}" if src.path.is_file() else f"source tree {src.path.name}")
    doc["extracted_by"] = "objectives/deploy/extract_flags.py"
    out = Path(args.output) if args.output else DATA_DIR / f"{recipe.engine}-{recipe.version}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1, sort_keys=False) + "\n")
    n = sum(len(c["flags"]) for c in doc["commands"].values())
    print(f"wrote {out} ({n} flags in {len(doc['commands'])} commands)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
