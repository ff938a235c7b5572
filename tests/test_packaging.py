"""A non-editable install carries the rules and the opset data as package data."""

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_contains_rules_and_opset_data(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path), str(ROOT)], check=True, capture_output=True)
    [wheel] = tmp_path.glob("tf_transpile-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "transpiler/data/opsets.json" in names
    assert "transpiler/data/rule.schema.json" in names
    assert "transpiler/runtimes/loader.py" in names   # `verify` runs it in the target's interpreter
    shipped = {n.rsplit("/", 1)[1] for n in names if n.startswith("transpiler/builtin_rules/")}
    assert {p.name for p in (ROOT / "rules").glob("*.yaml")} | {"macros.j2"} <= shipped
    packages = {n.rsplit("/", 1)[0] for n in names if n.startswith("transpiler/") and n.endswith("/__init__.py")}
    layers = {p.parent.relative_to(ROOT).as_posix() for p in (ROOT / "transpiler").glob("*/__init__.py")}
    assert layers <= packages, "subpackages missing from the wheel: %s" % sorted(layers - packages)
    [metadata] = [n for n in names if n.endswith(".dist-info/METADATA")]
    metadata = zipfile.ZipFile(wheel).read(metadata).decode()
    assert "Provides-Extra: tensorflow" in metadata  # pip install tf-transpile[tensorflow]
    assert any(line.startswith("Requires-Dist: tensorflow-cpu") and 'extra == "tensorflow"' in line
               for line in metadata.splitlines())
    entry = [n for n in names if n.endswith("entry_points.txt")]
    assert entry and "tf-transpile = transpiler.cli:run" in zipfile.ZipFile(wheel).read(entry[0]).decode()


def test_an_installed_package_finds_its_rules(tmp_path):
    """Installed without the checkout next to it, the package still loads its rules and macros."""
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "-q", "--target",
                    str(tmp_path / "site"), str(ROOT)], check=True, capture_output=True)
    code = ("from transpiler.engine.rule_files import load_rules; from transpiler.engine.builtin import builtin_rules_dir;"
            "d = builtin_rules_dir(); assert (d / 'macros.j2').is_file(), d; print(len(load_rules()), d)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(tmp_path),
                            env={"PYTHONPATH": str(tmp_path / "site"), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    count, where = result.stdout.split()
    assert int(count) > 50 and where.startswith(str(tmp_path / "site"))


def test_tensorflow_extra_is_declared():
    """`pip install tf-transpile[tensorflow]` pulls tensorflow-cpu; a plain install pulls no TensorFlow."""
    import configparser

    from packaging.requirements import Requirement

    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    extras = {name: [Requirement(line) for line in value.splitlines() if line.strip() and not line.startswith("#")]
              for name, value in cfg["options.extras_require"].items()}
    assert [r.name for r in extras["tensorflow"]] == ["tensorflow-cpu"]
    required = [line.split(">=")[0].strip() for line in cfg["options"]["install_requires"].splitlines()
                if line.strip() and not line.strip().startswith("#")]
    assert not {"tensorflow", "tensorflow-cpu"} & set(required)
