"""The repository's promises: pinned, agreeing environment files; CI runs the README's test
command; notebooks stripped of outputs with exactly one parameters cell."""

import json
import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def constraints() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[canonical(name)] = version
    return pins


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(spec: str) -> str:
    return canonical(re.split(r"[<>=!~\[ ;]", spec, maxsplit=1)[0])


def test_every_dependency_is_pinned():
    pins = constraints()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = project["dependencies"] + project["optional-dependencies"]["dev"]
    missing = [s for s in specs if requirement_name(s) not in pins]
    assert not missing, f"not pinned in constraints.txt: {missing}"
    assert pins["torch"] == "2.13.0" and "+" not in pins["torch"]


def test_environment_yml_agrees_with_constraints():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert env["channels"] == ["conda-forge"]
    deps = env["dependencies"]
    assert "python=3.11" in deps and "pip" in deps
    pip_section = next(d["pip"] for d in deps if isinstance(d, dict))
    assert "-e .[dev]" in pip_section or "-e ." in pip_section
    pins = constraints()
    listed = {}
    for spec in pip_section:
        if spec.startswith("-"):
            continue
        name, version = spec.split("==")
        listed[canonical(name)] = version
    for name, version in listed.items():
        assert pins.get(name) == version, f"environment.yml pins {name}=={version}, constraints.txt {pins.get(name)}"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    direct = {requirement_name(s) for s in project["dependencies"]}
    assert direct <= set(listed), f"environment.yml misses {sorted(direct - set(listed))}"
    assert pip_section.index("torch==" + pins["torch"]) == 0  # torch first, pinned in the same command


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"^(python3 -m slamlib\.env \w+.*)$", readme, flags=re.M)
    test_command = next(c for c in commands if " test" in c)
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_command.strip() in ci.splitlines()


def test_notebooks_are_stripped_with_one_parameters_cell():
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    assert notebooks
    for path in notebooks:
        nb = json.loads(path.read_text())
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), f"{path.name} has outputs"
        tagged = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert len(tagged) == 1, f"{path.name} has {len(tagged)} parameters cells"
        source = "".join(tagged[0]["source"])
        assert "PROFILE" in source and "RUN_DIR" in source


def test_pipeline_lists_every_notebook():
    from slamlib.pipeline import NOTEBOOKS

    assert list(NOTEBOOKS) == sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))


def test_environment_installs_torch_with_pip_then_the_rest_with_uv_or_pip(tmp_path, monkeypatch):
    """The install order, without installing: torch (and uv) by pip first; the pinned rest by uv,
    and by pip when uv fails; a stamp so that the next call installs nothing."""
    import subprocess

    from slamlib import env

    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text("")
    monkeypatch.setenv("SLAMLIB_VENV", str(venv))
    for uv_works in (True, False):
        calls = []

        def run(cmd, uv_works=uv_works):
            calls.append([str(c) for c in cmd])
            if "uv" in calls[-1][1:4] and not uv_works:
                raise subprocess.CalledProcessError(2, cmd)

        monkeypatch.setattr(env, "_run", run)
        (venv / env.STAMP_NAME).unlink(missing_ok=True)
        env.ensure_environment()
        assert calls[0][1:4] == ["-m", "pip", "install"] and env.pinned("torch") in calls[0]
        assert env.pinned("uv") in calls[0]
        assert calls[1][1:5] == ["-m", "uv", "pip", "install"] and "-c" in calls[1]
        assert len(calls) == (2 if uv_works else 3)
        if not uv_works:
            assert calls[2][1:4] == ["-m", "pip", "install"] and calls[2][-2:] == ["-e", f"{env.ROOT}[dev]"]
        calls.clear()
        env.ensure_environment()
        assert calls == []  # stamped: nothing installed again
