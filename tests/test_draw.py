"""``bnnzoo.draw`` and ``bnnzoo draw``: the structure of the DOT output, real renders, no-``dot`` behaviour."""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from types import SimpleNamespace

import graphviz
import pytest

from bnnzoo import dsl
from bnnzoo.cli import main
from bnnzoo.draw import (
    DrawError,
    GraphvizMissingError,
    draw_cell,
    draw_genotype,
    draw_grid,
    draw_network,
    node_states,
    render,
    resolve,
)
from bnnzoo.dsl.library import zoo_genotype
from bnnzoo.dsl.types import Basic, Cell, Edge, LayerList, MBConv, Node, Skip

HAS_DOT = shutil.which("dot") is not None
needs_dot = pytest.mark.skipif(not HAS_DOT, reason="Graphviz's dot program is not installed")

CELL_ZOO = "bnas_a_baseline"
# What each BNAS op is drawn as, written out here (not computed by bnnzoo.draw.style.op_kind).
EDGE_KINDS = {
    "max_pool_3x3": "real",
    "avg_pool_3x3": "real",
    "bin_conv_3x3": "binary",
    "bin_conv_5x5": "binary",
    "bin_dil_conv_3x3": "binary",
    "bin_dil_conv_5x5": "binary",
}
NETWORK_ZOO = ("xnor_resnet18", "bireal_resnet18")

MBCONV_TEXT = """\
bnnzoo 1
name mbconv_demo
space mbconv
input 3x32x32
classes 100
stem conv3x3 32 s2
head avgpool fc
shortcut partial_duplicate

layers {
  MB3(2) 32
  MB5(6) 64 s2 x2
  skip
  MB7(4) 128 s2 x3
  skip x2
  MB5(6) 256 s2 x4
  MB3(2) 256
}
"""


# --- a small reader of the DOT text the graphviz package writes ----------------------------------

_ID = r'"(?:[^"\\]|\\.)*"|[\w.]+'
_STATEMENT = re.compile(rf"^\s*(?P<tail>{_ID})(?:\s*->\s*(?P<head>{_ID}))?\s*\[(?P<attrs>.*)\]\s*$")
_ATTR = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|[^\s"\]]+)')


def _unquote(text: str) -> str:
    return text[1:-1] if text.startswith('"') else text


def parse_dot(source: str) -> tuple[dict[str, dict[str, str]], list[tuple[str, str, dict[str, str]]]]:
    """Nodes (id -> attributes) and edges (tail, head, attributes), in order of appearance."""
    nodes: dict[str, dict[str, str]] = {}
    edges: list[tuple[str, str, dict[str, str]]] = []
    for line in source.splitlines():
        match = _STATEMENT.match(line)
        if not match:
            continue
        tail, head = _unquote(match["tail"]), match["head"]
        attrs = {key: _unquote(value) for key, value in _ATTR.findall(match["attrs"])}
        if head is not None:
            edges.append((tail, _unquote(head), attrs))
        elif tail not in ("graph", "node", "edge"):
            assert tail not in nodes, f"node {tail} declared twice"
            nodes[tail] = attrs
    return nodes, edges


def kind(attrs: dict[str, str]) -> str:
    """The first word of the class: what the node or edge is (binary, real, dead, ...)."""
    return attrs["class"].split()[0]


def visible(edges):
    return [edge for edge in edges if edge[2].get("style") != "invis"]


def drawn(graph: graphviz.Digraph):
    nodes, edges = parse_dot(graph.source)
    return {k: v for k, v in nodes.items() if not k.startswith("legend_")}, visible(edges)


# --- cells -----------------------------------------------------------------------------------------


def expected_cell_edges(cell: Cell, prefix: str = "") -> list[tuple[str, str, str]]:
    def name(index: int) -> str:
        return f"{prefix}in{index}" if index < 2 else f"{prefix}n{index}"

    edges = [
        (name(edge.input), name(node.index), edge.op) for node in cell.nodes for edge in node.edges if edge.op != "none"
    ]
    return edges + [(name(index), f"{prefix}out", "") for index in cell.concat]


@pytest.mark.parametrize("kind_name", ["normal", "reduction"])
def test_cell_dot_matches_the_genotype(kind_name):
    cell = getattr(zoo_genotype(CELL_ZOO).body, kind_name)
    nodes, edges = drawn(draw_cell(cell))
    assert len(nodes) == 2 + len(cell.nodes) + 1
    assert nodes["in0"]["label"] == "c_{k-2}" and nodes["in1"]["label"] == "c_{k-1}"
    assert nodes["out"]["label"] == "c_{k}"
    got = [(tail, head, attrs.get("label", "")) for tail, head, attrs in edges]
    assert sorted(got) == sorted(expected_cell_edges(cell))
    assert not any(attrs.get("label") == "none" for _, _, attrs in edges)
    for _, head, attrs in edges:
        if head != "out":
            assert kind(attrs) == EDGE_KINDS[attrs["label"]]
            assert attrs["style"] == ("dotted" if kind(attrs) == "real" else "solid")


def test_bnas_a_cells_mark_zero_nodes_and_real_pooling():
    body = zoo_genotype(CELL_ZOO).body
    normal_nodes, normal_edges = drawn(draw_cell(body.normal))
    reduction_nodes, reduction_edges = drawn(draw_cell(body.reduction))
    # Nodes 4 and 5 of both cells have only none edges: zeros.
    for nodes in (normal_nodes, reduction_nodes):
        assert {key for key, attrs in nodes.items() if kind(attrs) == "dead"} == {"n4", "n5"}
        assert nodes["n4"]["class"] == "dead zero" and nodes["n4"]["label"] == "4\\nzero"
        assert {key for key, attrs in nodes.items() if kind(attrs) == "cell_node"} == {"n2", "n3"}
    assert {attrs["label"] for _, _, attrs in normal_edges if kind(attrs) == "binary"} == {
        "bin_dil_conv_3x3",
        "bin_conv_3x3",
    }
    assert [attrs["label"] for _, _, attrs in reduction_edges if kind(attrs) == "real"] == ["max_pool_3x3"] * 2
    assert not [edge for edge in reduction_edges if kind(edge[2]) == "binary"]


def _odd_cell() -> Cell:
    return Cell(
        "normal",
        (
            Node(2, (Edge("bin_conv_3x3", 0), Edge("none", 1))),
            Node(3, (Edge("max_pool_3x3", 2),)),
            Node(4, (Edge("none", 0), Edge("none", 1))),
            Node(5, (Edge("bin_conv_5x5", 1),)),
            Node(6, (Edge("bin_dil_conv_3x3", 4), Edge("avg_pool_3x3", 0))),
            Node(7, (Edge("avg_pool_3x3", 5),)),
        ),
        concat=(3, 6),
    )


def test_dead_node_rule():
    assert node_states(_odd_cell()) == {
        2: "live",  # feeds 3, in concat
        3: "live",
        4: "zero",  # only none edges
        5: "unused",  # feeds only 7, which reaches nothing
        6: "live",  # in concat; its edge from the zero node 4 is dead, the pooling of c_{k-2} is not
        7: "unused",
    }


def test_dead_nodes_and_edges_are_drawn_dead():
    nodes, edges = drawn(draw_cell(_odd_cell(), title="odd"))
    assert {key for key, attrs in nodes.items() if kind(attrs) == "dead"} == {"n4", "n5", "n7"}
    assert nodes["n5"]["label"] == "5\\nunused"
    dead_edges = {(tail, head) for tail, head, attrs in edges if "dead" in attrs["class"].split()}
    assert dead_edges == {("n4", "n6"), ("in1", "n5"), ("n5", "n7")}
    # Dead edges keep their line style: binary solid, real dotted.
    styles = {(tail, head): attrs["style"] for tail, head, attrs in edges}
    assert styles[("n5", "n7")] == "dotted" and styles[("in1", "n5")] == "solid"
    assert "label=odd" in draw_cell(_odd_cell(), title="odd").source


def test_genotype_with_both_cells_uses_two_clusters():
    genotype = zoo_genotype(CELL_ZOO)
    graph = draw_genotype(genotype)
    assert "subgraph cluster_normal" in graph.source and "subgraph cluster_reduction" in graph.source
    nodes, edges = drawn(graph)
    expected = expected_cell_edges(genotype.body.normal, "normal_")
    expected += expected_cell_edges(genotype.body.reduction, "reduction_")
    assert sorted((t, h, a.get("label", "")) for t, h, a in edges) == sorted(expected)
    assert len(nodes) == 2 * 7

    only_normal = draw_genotype(genotype, cell="normal")
    assert "cluster" not in only_normal.source
    assert len(drawn(only_normal)[0]) == 7
    assert "reduction" not in only_normal.source


# --- networks --------------------------------------------------------------------------------------


def _block_label(layer) -> str:
    if isinstance(layer, MBConv):
        return f"MB{layer.kernel} ({layer.expansion})\\n{layer.channels}"
    if isinstance(layer, Basic):
        return f"basic {layer.channels}"
    assert isinstance(layer, Skip)
    return "skip"


def _chain_order(edges) -> list[str]:
    following = {}
    for tail, head, attrs in edges:
        if kind(attrs) == "flow":
            assert tail not in following, f"{tail} has two successors"
            following[tail] = head
    order = ["input"]
    while order[-1] in following:
        order.append(following[order[-1]])
    return order


@pytest.mark.parametrize("source", [*NETWORK_ZOO, "mbconv_demo"])
def test_network_dot_matches_the_genotype(source):
    genotype = dsl.parse(MBCONV_TEXT) if source == "mbconv_demo" else zoo_genotype(source)
    assert isinstance(genotype.body, LayerList)
    nodes, edges = drawn(draw_network(genotype))
    blocks = list(genotype.body.expanded())
    strided = [i for i, layer in enumerate(blocks) if getattr(layer, "stride", 1) == 2]

    # One box per unrolled block, labelled like the paper; skips shown as identities.
    assert [nodes[f"b{i}"]["label"] for i in range(len(blocks))] == [_block_label(b) for b in blocks]
    assert not any(f"b{len(blocks)}" == key for key in nodes)
    for i, layer in enumerate(blocks):
        assert kind(nodes[f"b{i}"]) == ("identity" if isinstance(layer, Skip) else "binary")

    # A gray marker with the new size after every stride-2 point (the stem's too).
    size = genotype.input_shape[1]
    sizes = []
    for _ in range(len(strided) + (genotype.stem.stride == 2)):
        size = (size + 1) // 2
        sizes.append(f"{size}×{size}")
    markers = [key for key, attrs in nodes.items() if kind(attrs) == "boundary"]
    assert [nodes[key]["label"] for key in markers] == sizes
    assert markers == (["size_stem"] if genotype.stem.stride == 2 else []) + [f"size{i}" for i in strided]

    # Stem, pooling and classifier are real-valued; so are real 1x1 downsamples, and nothing else.
    downsamples = {}
    channels = genotype.stem.channels
    for i, layer in enumerate(blocks):
        if isinstance(layer, Basic) and (layer.stride != 1 or layer.channels != channels):
            downsamples[f"d{i}"] = layer.downsample
        channels = getattr(layer, "channels", channels)
    real = {key for key, attrs in nodes.items() if kind(attrs) == "real"}
    assert real == {"stem", "pool", "fc"} | {key for key, how in downsamples.items() if how == "real"}
    assert {key for key, attrs in nodes.items() if "downsample" in attrs["class"].split()} == set(downsamples)
    assert nodes["fc"]["label"] == f"fc {genotype.num_classes}"
    assert nodes["stem"]["style"] == "dotted,rounded"

    # The chain visits every box once, in order; downsamples hang off their block.
    chain = _chain_order(edges)
    assert chain[:2] == ["input", "stem"] and chain[-2:] == ["pool", "fc"]
    assert sorted(chain) == sorted(key for key in nodes if key not in downsamples)
    assert [key for key in chain if key.startswith("b")] == [f"b{i}" for i in range(len(blocks))]
    hanging = {(tail, head) for tail, head, attrs in edges if "downsample" in attrs["class"].split()}
    assert hanging == {(f"b{key[1:]}", key) for key in downsamples}
    assert len(edges) == len(chain) - 1 + len(downsamples)


def test_network_legend_lists_what_is_drawn():
    with_skip = parse_dot(draw_network(dsl.parse(MBCONV_TEXT)).source)[0]
    without_skip = parse_dot(draw_network("xnor_resnet18").source)[0]
    assert {key for key in with_skip if key.startswith("legend_")} == {
        "legend_binary",
        "legend_real",
        "legend_identity",
        "legend_boundary",
    }
    assert "legend_identity" not in without_skip
    assert all(attrs["class"].startswith("legend ") for key, attrs in with_skip.items() if "legend" in key)


def test_long_networks_wrap_into_rows():
    genotype = dsl.parse(MBCONV_TEXT)
    source = draw_network(genotype).source
    rows = re.findall(r"subgraph row(\d+) \{", source)
    assert len(rows) >= 3
    for body in re.findall(r"subgraph row\d+ \{(.*?)\n\t\}", source, flags=re.S):
        assert len(re.findall(r"^\t\t\w+ \[label=", body, flags=re.M)) <= 8


def test_draw_network_refuses_cell_genotypes_and_bad_cells():
    with pytest.raises(DrawError, match="cell genotype"):
        draw_network(CELL_ZOO)
    with pytest.raises(DrawError, match="unknown cell 'both'"):
        draw_genotype(CELL_ZOO, cell="both")


# --- inputs, grids, determinism -------------------------------------------------------------------


def test_accepts_genotypes_names_paths_tags_and_models(tmp_path):
    genotype = zoo_genotype("xnor_resnet18")
    path = tmp_path / "copy.bnn"
    dsl.dump(genotype, path)
    model = SimpleNamespace(genotype=genotype)
    sources = [genotype, "xnor_resnet18", "xnor_resnet18.untrained", str(path), path, model]
    assert {resolve(source) for source in sources} == {genotype}
    assert len({draw_genotype(source).source for source in sources}) == 1


def test_accepts_a_built_model():
    from bnnzoo.zoo import create_model

    model = create_model("bnas_a_baseline")
    assert draw_genotype(model).source == draw_genotype(CELL_ZOO).source


def test_grid_puts_genotypes_side_by_side():
    graph = draw_grid([CELL_ZOO, "xnor_resnet18", CELL_ZOO], cell="reduction")
    source = graph.source
    for number, name in enumerate([CELL_ZOO, "xnor_resnet18", CELL_ZOO]):
        assert re.search(rf"subgraph cluster_g{number} \{{\n\t\t[^\n]*label={name}", source)
    nodes, edges = drawn(graph)
    cell_nodes = [key for key in nodes if key.startswith(("g0_", "g2_"))]
    assert len(cell_nodes) == 2 * 7 and all("_reduction_" in key for key in cell_nodes)
    network_nodes, network_edges = drawn(draw_network("xnor_resnet18"))
    assert len([key for key in nodes if key.startswith("g1_")]) == len(network_nodes)
    assert len(edges) == 2 * len(expected_cell_edges(zoo_genotype(CELL_ZOO).body.reduction)) + len(network_edges)
    assert "legend_binary" in source

    both = draw_grid([CELL_ZOO, CELL_ZOO])
    assert sum(1 for key in drawn(both)[0] if key.startswith("g1_")) == 14
    with pytest.raises(DrawError):
        draw_grid([])


@pytest.mark.parametrize("source", [CELL_ZOO, "bireal_resnet18"])
def test_drawing_twice_gives_identical_dot(source, tmp_path):
    assert draw_genotype(source).source == draw_genotype(zoo_genotype(source)).source
    first, second = tmp_path / "a.dot", tmp_path / "b.dot"
    render(draw_genotype(source), first)
    render(draw_genotype(source), second, "dot")
    assert first.read_bytes() == second.read_bytes()
    umask = os.umask(0o022)
    os.umask(umask)
    assert first.stat().st_mode & 0o777 == 0o666 & ~umask, "the permissions of a plain open()"
    assert draw_grid([source, source]).source == draw_grid([source, source]).source


# --- rendering ---------------------------------------------------------------------------------------


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


@needs_dot
@pytest.mark.parametrize("source", [CELL_ZOO, "xnor_resnet18"])
def test_real_render_to_svg_and_png(source, tmp_path):
    graph = draw_genotype(source)
    svg, png = tmp_path / f"{source}.svg", tmp_path / "sub" / f"{source}.png"
    assert render(graph, svg) == [svg]
    assert render(graph, png, "png") == [png]

    root = ET.parse(svg).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    groups = [g.get("class", "") for g in root.iter("{http://www.w3.org/2000/svg}g")]
    nodes, edges = parse_dot(graph.source)
    assert len([c for c in groups if c.split()[:1] == ["node"]]) == len(nodes)
    assert len([c for c in groups if c.split()[:1] == ["edge"]]) == len(visible(edges))
    # The classes survive into the SVG, for CSS restyling.
    assert any(c.startswith("node binary") or c.startswith("node cell_node") for c in groups)

    width, height = _png_size(png.read_bytes())
    assert width > 200 and height > 100
    assert not list(tmp_path.rglob("*.tmp")), "atomic writes leave no temporary files"


@needs_dot
def test_render_pdf_and_format_from_extension(tmp_path):
    graph = draw_genotype(CELL_ZOO, cell="normal")
    pdf = tmp_path / "cell.pdf"
    render(graph, pdf)
    assert pdf.read_bytes().startswith(b"%PDF")
    with pytest.raises(DrawError, match="extension '.jpg'"):
        render(graph, tmp_path / "cell.jpg")
    with pytest.raises(DrawError, match="unknown diagram format"):
        render(graph, tmp_path / "cell.svg", "gif")


# --- without the dot program -------------------------------------------------------------------------


@pytest.fixture
def no_dot(tmp_path, monkeypatch):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert shutil.which("dot") is None
    return tmp_path


def test_render_without_dot_writes_dot_source_and_says_what_to_install(no_dot):
    graph = draw_genotype("xnor_resnet18")
    with pytest.raises(GraphvizMissingError) as caught:
        render(graph, no_dot / "net.svg")
    message = str(caught.value)
    assert "'dot'" in message and "apt-get install graphviz" in message and "brew install graphviz" in message
    assert caught.value.written == [no_dot / "net.dot"]
    assert (no_dot / "net.dot").read_text(encoding="utf-8") == graph.source
    assert not (no_dot / "net.svg").exists()
    # DOT itself needs no Graphviz program.
    assert render(graph, no_dot / "again.gv") == [no_dot / "again.gv"]


def test_render_catches_executable_not_found(no_dot, monkeypatch):
    monkeypatch.setattr("bnnzoo.draw.rendering.dot_available", lambda: True)
    with pytest.raises(GraphvizMissingError):
        render(draw_genotype(CELL_ZOO), no_dot / "cells.png", fallback_dot=False)
    assert not list(no_dot.glob("cells.*"))


def test_cli_without_dot(no_dot, capsys):
    assert main(["draw", "xnor_resnet18", "-o", str(no_dot / "net.png")]) == 1
    out, err = capsys.readouterr()
    assert out.splitlines() == [str(no_dot / "net.dot")]
    assert "bnnzoo draw: error: cannot make png" in err and "apt-get install graphviz" in err
    assert "Traceback" not in err
    assert (no_dot / "net.dot").is_file() and not (no_dot / "net.png").exists()

    assert main(["draw", "xnor_resnet18", "-o", str(no_dot / "asked.dot")]) == 0
    assert (no_dot / "asked.dot").is_file()


# --- the command -------------------------------------------------------------------------------------


def test_cli_writes_one_file_per_input(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["draw", CELL_ZOO, "xnor_resnet18", "--format", "dot"]) == 0
    assert capsys.readouterr().out.splitlines() == [f"{CELL_ZOO}.dot", "xnor_resnet18.dot"]
    assert (tmp_path / f"{CELL_ZOO}.dot").read_text(encoding="utf-8") == draw_genotype(CELL_ZOO).source

    assert main(["draw", CELL_ZOO, "--cell", "reduction", "--format", "dot"]) == 0
    written = tmp_path / f"{CELL_ZOO}_reduction.dot"
    assert capsys.readouterr().out.strip() == written.name
    assert written.read_text(encoding="utf-8") == draw_genotype(CELL_ZOO, "reduction").source

    out_dir = tmp_path / "diagrams"
    assert main(["draw", CELL_ZOO, "bireal_resnet18", "-o", str(out_dir), "--format", "dot"]) == 0
    assert sorted(path.name for path in out_dir.iterdir()) == ["bireal_resnet18.dot", f"{CELL_ZOO}.dot"]


def test_cli_grid_and_output_errors(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["draw", CELL_ZOO, "xnor_resnet18", "--grid", "-o", "both.dot"]) == 0
    assert (tmp_path / "both.dot").read_text(encoding="utf-8") == draw_grid([CELL_ZOO, "xnor_resnet18"]).source
    capsys.readouterr()

    assert main(["draw", CELL_ZOO, "xnor_resnet18", "-o", "both.svg"]) == 1
    assert "-o must be a directory" in capsys.readouterr().err
    assert main(["draw", CELL_ZOO, CELL_ZOO, "--format", "dot"]) == 1
    assert "would both be drawn" in capsys.readouterr().err
    assert main(["draw", CELL_ZOO, "-o", "x.png", "--format", "svg"]) == 1
    assert "names a png file but --format is svg" in capsys.readouterr().err
    assert main(["draw", "bnas_a_basline"]) == 1
    assert "did you mean 'bnas_a_baseline'" in capsys.readouterr().err
    assert main(["draw", str(tmp_path / "missing.bnn")]) == 1
    assert "no such genotype file" in capsys.readouterr().err


def _console_script() -> Path:
    beside = Path(sys.executable).parent / "bnnzoo"
    found = beside if beside.is_file() else Path(shutil.which("bnnzoo") or "")
    if not found.is_file():
        pytest.skip("the bnnzoo console script is not installed")
    return found


@pytest.mark.slow
def test_console_script_is_deterministic_and_works_without_dot(tmp_path):
    # One run of the installed command, with another hash seed than this process and no dot on
    # PATH: it says what to install, writes the DOT source, fails, and the DOT equals ours.
    script = _console_script()
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    seed = "1" if os.environ.get("PYTHONHASHSEED") != "1" else "2"
    env = {**os.environ, "PYTHONHASHSEED": seed, "PATH": str(empty)}
    out = tmp_path / "run.svg"
    result = subprocess.run([str(script), "draw", CELL_ZOO, "-o", str(out)], env=env, capture_output=True, text=True)
    assert result.returncode == 1, result.stderr
    assert "apt-get install graphviz" in result.stderr and "Traceback" not in result.stderr
    assert result.stdout.strip() == str(tmp_path / "run.dot")
    assert not out.exists()
    assert (tmp_path / "run.dot").read_text(encoding="utf-8") == draw_genotype(CELL_ZOO).source
