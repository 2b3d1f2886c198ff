"""The package's layout rules: private names stay in their module, the front door is small.

The stage layers themselves are an import-linter contract (``pyproject.toml``,
``lint-imports`` in CI).
"""

import ast
import pathlib
import subprocess
import sys

import xsol

PACKAGE = pathlib.Path(xsol.__file__).resolve().parent


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path, ast.parse(path.read_text(), filename=str(path))


def test_no_private_name_is_imported_from_another_module():
    found = []
    for path, tree in _modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("xsol"):
                for alias in node.names:
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} "
                                     f"from {node.module} import {alias.name}")
    assert not found, "private names imported across modules:\n" + "\n".join(found)


def test_no_mock_in_the_library():
    def uses_mock(node):
        if isinstance(node, ast.ImportFrom):
            return (node.module or "").startswith("unittest.mock") or (
                node.module == "unittest" and any(a.name == "mock" for a in node.names))
        if isinstance(node, ast.Import):
            return any(a.name.startswith("unittest.mock") for a in node.names)
        return False

    users = [str(p.relative_to(PACKAGE.parent)) for p, tree in _modules()
             if any(uses_mock(n) for n in ast.walk(tree))]
    assert not users, users


def test_the_front_door_is_small_and_every_name_resolves():
    assert len(xsol.__all__) <= 25
    for name in xsol.__all__:
        assert getattr(xsol, name) is not None, name


def test_import_xsol_loads_no_heavy_optional_library():
    code = ("import sys, xsol; heavy = ['sklearn', 'flax', 'optax', 'orbax', 'matplotlib', "
            "'tensorflow', 'tensorflow_datasets']; "
            "print(','.join(m for m in heavy if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "", f"import xsol loaded {out}"


def test_no_benchmark_inside_the_package():
    assert not (PACKAGE / "bench").exists()
    for path, tree in _modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("benchmarks"):
                raise AssertionError(f"{path} imports {node.module}")


def test_the_tests_mirror_the_package():
    tests = pathlib.Path(__file__).resolve().parent
    stray = [d.name for d in tests.iterdir()
             if d.is_dir() and not d.name.startswith((".", "_"))
             and not ((PACKAGE / d.name).is_dir() or (PACKAGE / f"{d.name}.py").is_file())]
    assert not stray, f"test folders with no package stage of that name: {stray}"
    assert not list(tests.glob("*/__init__.py")), "test folders are not packages"
