"""The wheel: it holds every file of the package, and installed into a fresh virtual
environment it runs ``riskstrat demo`` outside the repository (the default model
specification and configuration come from the installed package, not the source tree)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from .conftest import REPO

pytestmark = pytest.mark.slow

#: what a wheel is built from; copied, so that the build's build/ and *.egg-info stay out of the repository
_BUILD_INPUTS = ("pyproject.toml", "README.md", "LICENSE", "riskstrat")
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc")


def _run(args: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, check=False, **kwargs)


def _package_files() -> set[str]:
    """Every file of the source package, as a path in a wheel (riskstrat/...)."""
    package = REPO / "riskstrat"
    return {
        path.relative_to(REPO).as_posix()
        for path in package.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel built from a copy of the source tree, with the project environment's setuptools."""
    base = tmp_path_factory.mktemp("wheel")
    source = base / "source"
    source.mkdir()
    for name in _BUILD_INPUTS:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=_IGNORED)
        else:
            shutil.copy2(REPO / name, source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    out = base / "dist"
    built = _run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "--wheel-dir", str(out), str(source)], timeout=600
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    (path,) = out.glob("riskstrat-0.1.0-*.whl")
    return path


def test_the_wheel_holds_every_file_of_the_package_and_the_licence(wheel):
    with zipfile.ZipFile(wheel) as whl:
        names = set(whl.namelist())
    packaged = {n for n in names if n.startswith("riskstrat/")}
    assert packaged == _package_files(), "files missing from the wheel: add them to [tool.setuptools.package-data]"
    assert "riskstrat/defaults/models/emergency_admission_12m.yaml" in packaged
    assert "riskstrat/defaults/configs/default.yaml" in packaged
    assert "riskstrat/py.typed" in packaged
    assert any(n.startswith("riskstrat-0.1.0.dist-info/") and n.endswith("LICENSE") for n in names)


def test_the_installed_wheel_runs_the_demo_outside_the_repository(wheel, tmp_path):
    """Installing the dependencies from the package index into the fresh environment would
    take many minutes and about 1 GB on every run; instead it shares the project
    environment's installed dependencies through a ``.pth`` line naming that environment's
    site-packages. A ``.pth`` line that names a directory only adds it to ``sys.path``: the
    ``.pth`` files inside it, among them the project's editable install
    (``__editable__.riskstrat-*.pth``), are not run, and the fresh environment's own
    site-packages comes first, so riskstrat is imported from the installed wheel (asserted)."""
    fresh = tmp_path / "venv"
    made = _run([sys.executable, "-m", "venv", "--without-pip", str(fresh)], timeout=300)
    assert made.returncode == 0, made.stderr[-3000:]
    scripts = fresh / ("Scripts" if os.name == "nt" else "bin")
    python = scripts / "python"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--python", str(python)]
    # installed before the dependencies are shared, so that pip sees no other riskstrat
    installed = _run([*pip, "install", "--no-deps", "--no-index", str(wheel)], timeout=600)
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
    site = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], timeout=60)
    shared = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(site.stdout.strip()) / "_riskstrat_test_shared_dependencies.pth").write_text("\n".join(sorted(shared)) + "\n")

    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"} and not k.startswith(("RISKSTRAT_", "MLFLOW_"))
    }
    env["COLUMNS"] = "200"  # no wrapped lines in the output read below
    outside = tmp_path / "elsewhere"
    outside.mkdir()

    paths = "import riskstrat, riskstrat.modelling.spec as s, riskstrat.config as c; "
    paths += "print(riskstrat.__file__, s.DEFAULT_SPEC, c.DEFAULT_CONFIG, sep='\\n')"
    where = _run([str(python), "-c", paths], cwd=outside, env=env, timeout=120)
    assert where.returncode == 0, where.stderr[-3000:]
    module, spec, config = (Path(line) for line in where.stdout.splitlines())
    assert module.is_relative_to(fresh), f"riskstrat imported from {module}, not the installed wheel"
    assert spec.is_relative_to(fresh) and spec.is_file()
    assert config.is_relative_to(fresh) and config.is_file()

    cli = scripts / "riskstrat"
    version = _run([str(cli), "--version"], cwd=outside, env=env, timeout=120)
    assert version.returncode == 0, version.stderr[-3000:]
    assert "0.1.0" in version.stdout

    demo = _run(
        [str(cli), "demo", "--workdir", str(tmp_path / "demo"), "--patients", "2000"],
        cwd=outside,
        env=env,
        timeout=1800,
    )
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    assert "no champion registered: train at" in demo.stdout  # the demo is `riskstrat run` on its population
    assert "registered emergency_admission_12m version 1" in demo.stdout  # the packaged default specification
    assert "commissioners: cohort table of" in demo.stdout  # the export, after scoring
    assert "demo finished in" in demo.stdout
    assert (tmp_path / "demo" / "work" / "mlflow.db").is_file()
