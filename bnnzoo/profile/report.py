"""Present a profile: a Table 3-style row beside the published figures, a per-layer table, JSON.

The JSON schema (``bnnzoo info --json``), version ``bnnzoo.info/1``::

    {"schema": "bnnzoo.info/1", "name": str, "space": str, "input_size": [C, H, W],
     "ours": {"bops": int, "flops": int, "equiv_ops": float, "binary_params": int,
              "real_params": int, "params_mb": float, "binary_mac_share": float},
     "published": null | {"model": str, "bops": float, "flops": float, "equiv_ops": float,
                          "params_mb": float | null, "cifar10_top1": float | null,
                          "cifar100_top1": float | null},
     "relative_error": null | {"bops": float, "flops": float, "equiv_ops": float, "params_mb": float},
     "layers": [...]   # only with --layers: one object per LayerCount, plus "memory_mb"
    }

Ops are plain counts (not G or M); published figures are converted to the same units.
"""

from __future__ import annotations

from typing import Any

from bnnzoo.profile.counter import Profile
from bnnzoo.profile.published import PublishedRow

SCHEMA = "bnnzoo.info/1"


def info_dict(
    name: str, space: str, profile: Profile, published: PublishedRow | None, layers: bool = False
) -> dict[str, Any]:
    ours = profile.totals()
    result: dict[str, Any] = {
        "schema": SCHEMA,
        "name": name,
        "space": space,
        "input_size": list(profile.input_size),
        "ours": ours,
        "published": None,
        "relative_error": None,
    }
    if published is not None:
        targets = published.targets()
        result["published"] = {
            "model": published.model,
            "bops": targets["bops"],
            "flops": targets["flops"],
            "equiv_ops": targets["equiv_ops"],
            "params_mb": targets.get("params_mb"),
            "cifar10_top1": published.cifar10_top1,
            "cifar100_top1": published.cifar100_top1,
        }
        result["relative_error"] = {key: ours[key] / value - 1 for key, value in targets.items()}
    if layers:
        result["layers"] = profile.layer_dicts()
    return result


def format_row(info: dict[str, Any]) -> str:
    """A Table 3-style comparison: ours, published and the difference."""
    header = f"{'':12s} {'BOPs (G)':>10s} {'FLOPs (M)':>10s} {'Equiv (M)':>10s} {'Params (MB)':>12s}"
    lines = [f"{info['name']} ({info['space']}, input {'x'.join(map(str, info['input_size']))})", header]
    lines.append(_row("ours", info["ours"]))
    if info["published"]:
        lines.append(_row("published", info["published"]))
        errors = info["relative_error"]
        cells = [f"{errors[key] * 100:+9.1f}%" if key in errors else f"{'-':>10s}" for key in _KEYS]
        lines.append(f"{'difference':12s} {cells[0]} {cells[1]} {cells[2]} {cells[3]:>12s}")
        accuracy = [
            f"CIFAR-{n} {info['published'][f'cifar{n}_top1']}%"
            for n in (10, 100)
            if info["published"][f"cifar{n}_top1"] is not None
        ]
        if accuracy:
            lines.append(f"published accuracy (paper's claim): {', '.join(accuracy)}")
    else:
        lines.append("published: no figures in the paper's Table 3 for this model")
    return "\n".join(lines)


_KEYS = ("bops", "flops", "equiv_ops", "params_mb")


def _row(label: str, figures: dict[str, Any]) -> str:
    params = figures.get("params_mb")
    params_text = f"{params:12.3f}" if params is not None else f"{'n/a':>12s}"
    return (
        f"{label:12s} {figures['bops'] / 1e9:10.3f} {figures['flops'] / 1e6:10.2f} "
        f"{figures['equiv_ops'] / 1e6:10.2f} {params_text}"
    )


def format_layers(profile: Profile) -> str:
    """A per-layer table in the style of larq's model summary."""
    header = (
        f"{'layer':40s} {'input':>6s} {'output':>16s} {'1-bit params':>13s} {'32-bit params':>14s} "
        f"{'memory (kB)':>12s} {'1-bit MACs':>13s} {'32-bit MACs':>13s}"
    )
    lines = [header, "-" * len(header)]
    for layer in profile.layers:
        shape = "x".join(map(str, layer.output_shape))
        lines.append(
            f"{layer.name[:40]:40s} {layer.input_precision:>6s} {shape:>16s} {layer.binary_params:13,d} "
            f"{layer.real_params:14,d} {layer.memory_mb * 1e3:12.2f} {layer.bops:13,d} {layer.flops:13,d}"
        )
    lines.append("-" * len(header))
    lines.append(
        f"{'total':40s} {'':>6s} {'':>16s} {profile.binary_params:13,d} {profile.real_params:14,d} "
        f"{profile.params_mb * 1e3:12.2f} {profile.bops:13,d} {profile.flops:13,d}"
    )
    lines.append(f"binary share of MACs: {profile.binary_share * 100:.2f}%")
    return "\n".join(lines)
