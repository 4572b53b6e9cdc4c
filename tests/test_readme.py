"""The README's Python snippets run as written, and print what their comments say."""

import contextlib
import io
import os
import re
import shutil
import subprocess

import pytest

README = os.path.join(os.path.dirname(__file__), os.pardir, "README.md")


def _snippets():
    with open(README, encoding="utf-8") as f:
        return re.findall(r"```python\n(.*?)```", f.read(), flags=re.S)


def _expected_prints(code):
    """For each print(...) line, the text of its trailing comment (or None)."""
    out = []
    for line in code.splitlines():
        if line.startswith("print("):
            match = re.search(r"\)\s+#\s(.*)$", line)
            out.append(match.group(1).strip() if match else None)
    return out


def test_readme_has_snippets():
    assert len(_snippets()) >= 4


@pytest.mark.parametrize("index", range(len(_snippets())))
def test_readme_snippet_runs(index, tmp_path, monkeypatch):
    code = _snippets()[index]
    monkeypatch.chdir(tmp_path)
    os.makedirs("out")
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        exec(compile(code, f"README.md snippet {index + 1}", "exec"), {"__name__": "__readme__"})
    printed = buffer.getvalue().splitlines()
    expected = _expected_prints(code)
    assert len(printed) == len(expected)
    for got, want in zip(printed, expected):
        if want is not None:
            assert got == want
    for name in re.findall(r'"(out/[^"]+\.svg)"', code):
        assert (tmp_path / name).is_file(), name


def test_readme_images_exist():
    with open(README, encoding="utf-8") as f:
        images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", f.read())
    assert images
    for path in images:
        assert os.path.isfile(os.path.join(os.path.dirname(README), path)), path


def test_quick_start_has_exactly_two_commands_and_ci_runs_the_test_one():
    with open(README, encoding="utf-8") as f:
        quick = f.read().split("## Quick start", 1)[1].split("##", 1)[0]
    commands = re.findall(r"```sh\n(.*?)```", quick, flags=re.S)[0].strip().splitlines()
    assert [c.split("#")[0].strip() for c in commands] == ["make demo", "make test"]
    with open(os.path.join(os.path.dirname(README), ".ci", "run"), encoding="utf-8") as f:
        assert "make test" in f.read()


def test_readme_gradient_flow_image_is_the_demos_with_whole_step_ticks():
    """The README's docs/chars_gradient_flow.svg was drawn before the plots' step axes got
    integer ticks (it read 2.5, 7.5, 17.5): it is the demo's current drawing."""
    path = os.path.join(os.path.dirname(README), "docs", "chars_gradient_flow.svg")
    with open(path, encoding="utf-8") as f:
        labels = re.findall(r"<!-- (.*?) -->", f.read())
    ticks = labels[:labels.index("time step t")]
    assert len(ticks) >= 3
    assert all(re.fullmatch(r"\d+", tick) for tick in ticks), ticks


def test_make_demo_installs_the_package_alone_and_make_test_its_test_extras(tmp_path):
    """The demo needs none of pytest, hypothesis and playwright (playwright alone is tens of MB):
    `make demo` installs the package, `make test` adds the [test] extras (checked by make's dry
    run into a fresh venv folder, which runs nothing)."""
    make = shutil.which("make")
    if make is None:
        pytest.skip("no make here")
    root = os.path.dirname(README)

    def dry_run(target):
        return subprocess.run([make, "-n", "-C", root, target, f"VENV={tmp_path / 'venv'}"],
                              capture_output=True, text=True, check=True).stdout
    demo = dry_run("demo")
    assert "pip install --quiet -e ." in demo and "[test]" not in demo
    assert "tinygraph demo" in demo
    test = dry_run("test")
    assert "-e '.[test]'" in test and "-m pytest" in test
