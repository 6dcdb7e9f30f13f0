"""`neuralens models list | info | export`: the fast style models, their training, and exporting them (ONNX,
TorchScript). Parsing and printing over neuralens.fast.model and neuralens.fast.export."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Iterator, List, Tuple

from .. import options as option_specs
from ..errors import NeuralensError
from . import model as fast_model
from .export import ExportOptions, export_model
from .model import builtin_names, model_info
from .network import build_network, parameter_count

EXAMPLES = """examples:
  neuralens models list
  neuralens models info starry-night
  neuralens models info my_style.pt --json
  neuralens models export starry-night -o starry-night.onnx
  neuralens models export my_style.pt -o my_style.ts          (TorchScript: .ts or .torchscript)

An export is checked before it is written: it runs on the Tübingen photo (a 4:3 size and an odd one) and is
compared with PyTorch fp32; the largest difference is printed. ONNX needs `pip install neuralens[export]`.
"""


# --- what is printed --------------------------------------------------------------------------------------
def _size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def _training(data: dict) -> Tuple[Any, Any]:
    """(steps, seconds) of a model's training: from its info, else from its training report."""
    info = data.get("info") or {}
    result = (data.get("report") or {}).get("result") or {}
    steps = info.get("iterations", result.get("iterations"))
    seconds = info.get("seconds", result.get("seconds"))
    return steps, seconds


def _trained(data: dict) -> str:
    steps, seconds = _training(data)
    parts = []
    if isinstance(steps, (int, float)):
        parts.append(f"{int(steps)} steps")
    if isinstance(seconds, (int, float)):
        parts.append(f"{seconds / 60:.0f} min" if seconds >= 60 else f"{seconds:.0f} s")
    if (data.get("info") or {}).get("stopped"):
        parts.append("stopped early")
    return ", ".join(parts) or "-"


def _painting(data: dict) -> str:
    info = data.get("info") or {}
    return str(info.get("painting") or (data.get("report") or {}).get("style") or "-")


def _summary(name: str) -> dict:
    """One row of `models list`: what model_info says, or the reason the file cannot be read."""
    try:
        data = model_info(fast_model.BUILTIN / f"{name}{fast_model.MODEL_SUFFIX}")  # not a same-named local file
    except NeuralensError as exc:
        return {"name": name, "error": str(exc)}
    steps, seconds = _training(data)
    return {
        "name": name,
        "painting": _painting(data),
        "architecture": data["architecture"],
        "width": data["width"],
        "bytes": data["bytes"],
        "iterations": steps,
        "minutes": round(seconds / 60, 1) if isinstance(seconds, (int, float)) else None,
        "trained": _trained(data),
        "path": data["path"],
    }


def _table(rows: List[List[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)


def _flatten(value: Any, prefix: str = "") -> Iterator[Tuple[str, str]]:
    """(dotted key, readable value) for every leaf of nested dicts; long lists are summarised."""
    if isinstance(value, dict):
        if not value and prefix:
            yield prefix, "-"
        for key, item in value.items():
            yield from _flatten(item, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, list):
        if all(not isinstance(v, (dict, list)) for v in value) and len(value) <= 8:
            yield prefix, ", ".join(_scalar(v) for v in value) or "-"
        else:
            yield prefix, f"[{len(value)} entries]"
    else:
        yield prefix, _scalar(value)


def _scalar(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


# --- the commands -----------------------------------------------------------------------------------------
def cmd_list(args) -> int:
    rows = [_summary(name) for name in builtin_names()]
    if args.json:
        _print_json(rows)
        return 0
    if not rows:
        print("no built-in models installed (train one with `neuralens train-style`)")
        return 0
    table = [["NAME", "PAINTING", "NETWORK", "SIZE", "TRAINED"]]
    for row in rows:
        if "error" in row:
            table.append([row["name"], f"unreadable: {row['error']}", "", "", ""])
        else:
            network = f"{row['architecture']} {row['width']}"
            table.append([row["name"], row["painting"], network, _size(row["bytes"]), row["trained"]])
    print(_table(table))
    return 0


def cmd_info(args) -> int:
    data = model_info(args.model)
    data.setdefault("parameters", parameter_count(build_network(data["architecture"], data["width"])))
    if args.json:
        _print_json(data)
        return 0
    head = [
        ("name", data["name"]),
        ("file", data["path"]),
        ("size", _size(data["bytes"])),
        ("network", f"{data['architecture']}, width {data['width']}"),
        ("parameters", f"{data['parameters']:,}"),
        ("painting", _painting(data)),
        ("trained", _trained(data)),
    ]
    info = [(f"info.{k}", v) for k, v in _flatten(data.get("info") or {})]
    report = [(f"report.{k}", v) for k, v in _flatten(data["report"])] if "report" in data else []
    lines = head + info + report
    width = max(len(k) for k, _ in lines)
    for key, value in lines:
        print(f"{key.ljust(width)}  {value}")
    return 0


def cmd_export(args) -> int:
    values = option_specs.values_from(args, ExportOptions)
    result = export_model(args.model, args.output, **values)
    if args.json:
        _print_json(result.to_dict())
        return 0
    kind = (
        f"ONNX opset {result.opset}, {result.method} exporter"
        if result.format == "onnx"
        else f"TorchScript, {'scripted' if result.method == 'script' else 'traced'}"
    )
    print(f"wrote {result.path} ({kind}, {_size(result.bytes)}) in {result.seconds:.1f} s")
    if result.checked:
        sizes = " and ".join(f"{h}x{w}" for h, w in result.checked_on)
        runtime = "onnxruntime" if result.format == "onnx" else "torch.jit.load"
        print(f"checked with {runtime} on {sizes} against PyTorch fp32: max abs difference {result.max_abs_diff:.2g}")
    elif result.note:
        print(f"warning: {result.note}", file=sys.stderr)
    else:
        print("not checked (--no-check)")
    return 0


def register(subparsers) -> None:
    """Add `neuralens models` (list, info, export)."""
    models = subparsers.add_parser(
        "models",
        help="list, describe and export fast style models (ONNX, TorchScript)",
        description="The fast (feed-forward) style models: the built-in ones, what a model file holds, and "
        "exporting one for onnxruntime or TorchScript. See docs/fast-export.md.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    models.set_defaults(func=lambda args: (models.print_help(), 2)[1])
    sub = models.add_subparsers(dest="models_command", metavar="COMMAND")

    p = sub.add_parser("list", help="the built-in models: painting, network, size and training")
    p.add_argument("--json", action="store_true", help="print the list as JSON")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("info", help="everything a model file says about itself and its training")
    p.add_argument("model", metavar="NAME|PATH", help="a built-in model's name or a model file (.pt)")
    p.add_argument("--json", action="store_true", help="print it as JSON")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser(
        "export",
        help="write a model as ONNX (.onnx) or TorchScript (.ts, .torchscript), checked against PyTorch",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", metavar="NAME|PATH", help="a built-in model's name or a model file (.pt)")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="model.onnx, model.ts or model.torchscript")
    option_specs.add_arguments(p, ExportOptions)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_export)
