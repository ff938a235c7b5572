"""One test per bug the fuzzer (tests/fuzzing.py) found: each was an exit 3 (an internal error) or a
conversion that was not idempotent; each is now one clear line with a documented exit code, or the
same bytes on a second conversion."""

import shutil
from pathlib import Path

import pytest

from transpiler.io.protos import graph_pb2, text_format

SM = "tensorflow__sm_half_plus_two_v2_2018"


def one_line(result, code, *fragments):
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tf-transpile: error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def write_graph(path: Path, text: str) -> Path:
    path.write_text(text_format.MessageToString(text_format.Parse(text, graph_pb2.GraphDef())))
    return path


X = 'node { name: "x" op: "Placeholder" attr { key: "dtype" value { type: DT_FLOAT } } }\n'


# ---- malformed nodes (KeyError: 'body' in lower_while; KeyError: 'cond') ------------------------

@pytest.mark.parametrize("attrs,missing", [
    ('attr { key: "cond" value { func { name: "f" } } }', "body"),
    ('attr { key: "body" value { func { name: "f" } } }', "cond"),
])
def test_while_without_its_body_or_cond_is_bad_input(cli, tmp_path, attrs, missing):
    graph = write_graph(tmp_path / "g.pbtxt", X + """
        library { function { signature { name: "f" input_arg { name: "a" type: DT_FLOAT }
                                         output_arg { name: "b" type: DT_FLOAT } } ret { key: "b" value: "a" } } }
        node { name: "w" op: "While" input: "x" attr { key: "T" value { list { type: DT_FLOAT } } } %s }
        """ % attrs)
    for target in ("1.15", "1.8"):
        one_line(cli(graph, tmp_path / "out.pbtxt", "--to", target), 2,
                 "node w (While) lacks its required attr '%s'" % missing)
    assert not (tmp_path / "out.pbtxt").exists()


def test_attr_of_the_wrong_kind_is_bad_input(cli, tmp_path):
    graph = write_graph(tmp_path / "g.pbtxt", X + 'node { name: "y" op: "Identity" input: "x" '
                                                  'attr { key: "T" value { s: "DT_FLOAT" } } }')
    one_line(cli(graph, tmp_path / "out.pbtxt", "--to", "1.8"), 2,
             "node y (Identity) has attr 'T' holding s, not a type")


def test_attrs_every_release_accepts_are_not_refused(cli, tmp_path):
    """An attr some release declares with a default (or that a release lacks) is no reason to refuse."""
    graph = write_graph(tmp_path / "g.pbtxt", X + 'node { name: "y" op: "Identity" input: "x" '
                                                  'attr { key: "T" value { type: DT_FLOAT } } '
                                                  'attr { key: "_class" value { list { s: "loc:@x" } } } }')
    assert cli(graph, tmp_path / "out.pbtxt", "--to", "1.8").returncode == 0


def test_node_with_inputs_its_op_does_not_take_is_bad_input(cli, tmp_path):
    """Was IndexError in checkpoint_names (a save function's Identity with its input deleted)."""
    graph = write_graph(tmp_path / "g.pbtxt", X + 'node { name: "y" op: "Mul" input: "x" '
                                                  'attr { key: "T" value { type: DT_FLOAT } } }')
    one_line(cli(graph, tmp_path / "out.pbtxt", "--to", "1.8"), 2, "node y (Mul) has 1 data input(s), its op takes 2")


# ---- tensor names (ValueError: invalid literal for int() ... 'out:x') ----------------------------

@pytest.mark.parametrize("name", ["x:abc", "x:out:x", "x:-1", "x:", ":0"])
def test_input_that_is_not_a_tensor_name_is_bad_input(cli, tmp_path, name):
    graph = write_graph(tmp_path / "g.pbtxt", X + 'node { name: "y" op: "Identity" input: "%s" '
                                                  'attr { key: "T" value { type: DT_FLOAT } } }' % name)
    for command in ([graph, tmp_path / "out.pbtxt", "--to", "1.8"], ["check", graph, "--to", "1.8"]):
        one_line(cli(*command), 2, "not a valid graph: the graph, node y: input %r is not a tensor name" % name)


@pytest.mark.parametrize("name", ["ghost", "^ghost", "ghost:3", "^x:1"])
def test_input_naming_no_node_is_bad_input(cli, tmp_path, name):
    inputs = ["x", name] if not name.startswith("^") else ["x", "x", name]
    graph = write_graph(tmp_path / "g.pbtxt", X + 'node { name: "y" op: "Add" %s attr { key: "T" value { type: DT_FLOAT } } }'
                        % " ".join('input: "%s"' % i for i in inputs))
    one_line(cli(graph, tmp_path / "out.pbtxt", "--to", "1.8"), 2, "node y: input %r names no node" % name)


def test_function_return_that_is_not_a_tensor_name_is_bad_input(cli, tmp_path):
    graph = write_graph(tmp_path / "g.pbtxt", X + """
        library { function { signature { name: "f" input_arg { name: "a" type: DT_FLOAT }
                                         output_arg { name: "b" type: DT_FLOAT } } ret { key: "b" value: "a:bad" } } }
        """)
    one_line(cli(graph, tmp_path / "out.pbtxt", "--to", "1.8"), 2, "function f: a return value 'a:bad'")


# ---- OUT names past NAME_MAX (OSError: [Errno 36] File name too long) ----------------------------

@pytest.mark.parametrize("name", ["m" * 256, "m" * 251 + ".meta", "m" * 300 + "/x"])
def test_out_name_longer_than_the_file_system_allows(cli, tmp_path, corpus_case, name):
    model = tmp_path / "in"
    shutil.copytree(corpus_case(SM), model)
    one_line(cli(model, tmp_path / name, "--to", "1.8"), 2, "longer than the 255 bytes a file name may have")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


# ---- a damaged checkpoint in an upgrade (OpError from TF's checkpoint reader) ---------------------

def test_damaged_checkpoint_index_on_upgrade_is_refused(cli, tmp_path, corpus_case):
    model = tmp_path / "in"
    shutil.copytree(corpus_case(SM), model)
    index = model / "variables" / "variables.index"
    index.chmod(0o644)
    data = bytearray(index.read_bytes())
    data[40] ^= 0x10
    index.write_bytes(bytes(data))
    one_line(cli(model, tmp_path / "out", "--to", "2.21"), 2, "corrupt checkpoint")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


# ---- idempotence: softmax-nd-to-2d fired again on the 2-D Softmax it wrote ------------------------

@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
def test_converting_the_output_again_changes_nothing(cli, tmp_path, op):
    """The logits' rank is unknown (no shape recorded): the rule fires, and records its matrix as 2-D."""
    graph = write_graph(tmp_path / "g.pbtxt", X + 'node { name: "y" op: "%s" input: "x" '
                                                  'attr { key: "T" value { type: DT_FLOAT } } }' % op)
    first = cli(graph, tmp_path / "once.pbtxt", "--to", "1.4")
    assert first.returncode == 0 and "nd-to-2d x1" in first.stdout, first.stdout + first.stderr
    second = cli(tmp_path / "once.pbtxt", tmp_path / "twice.pbtxt", "--to", "1.4")
    assert second.returncode == 0 and "rules fired: none" in second.stdout, second.stdout
    assert (tmp_path / "once.pbtxt").read_bytes() == (tmp_path / "twice.pbtxt").read_bytes()


def test_softmax_of_recorded_2d_logits_is_left_alone(tmp_path):
    """Logits recorded as 2-D (graph-mode exports keep _output_shapes) need no rewrite before TF 1.11."""
    from transpiler.engine.rule_files import load_rules
    from transpiler.engine.rule_pass import RulePass
    from transpiler.ir.graph import lift
    from transpiler.knowledge.releases import catalog

    def fired(shape):
        graph = text_format.Parse(X.replace("} } }", "} } attr { key: \"_output_shapes\" value { list { shape { %s } } } } }"
                                            % "".join("dim { size: %d }" % d for d in shape)) +
                                  'node { name: "y" op: "Softmax" input: "x" attr { key: "T" value { type: DT_FLOAT } } }',
                                  graph_pb2.GraphDef())
        rule_pass = RulePass(load_rules([]), catalog().opset("1.4"))
        rule_pass(lift(graph))
        return [f.rule for f in rule_pass.fired]

    assert fired([2, 3]) == [] and fired([-1, -1]) == []
    assert fired([2, 3, 4]) == ["softmax-nd-to-2d"] and fired([5]) == ["softmax-nd-to-2d"]


# ---- a saver's key list of the wrong shape (TypeError in checkpoint_names._drop_unread) ----------

def test_restore_keys_of_the_wrong_shape_are_bad_input(tmp_path):
    """The fuzzer's case (seed 2, index 735): RestoreV2's shape_and_slices Const reshaped to [1, 1, 1, 1]."""
    import fuzzing

    case, work = fuzzing.build_case(2, 735, tmp_path / "case")
    assert "RestoreV2/shape_and_slices shape [1, 1, 1, 1]" in case.detail, case.detail
    result = fuzzing.run_case(case, work, timeout=120)
    assert result.outcome == "exit 2", (result.outcome, result.stderr_tail)
    assert "tensor_names and shape_and_slices must be 1-D string Consts" in result.stderr_tail
