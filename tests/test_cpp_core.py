"""Builds the C++ core's own unit tests with sanitizers and runs them (skips without cmake)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake is not installed")
@pytest.mark.skipif(not (ROOT / "CMakeLists.txt").exists(), reason="needs the source tree")
def test_cpp_core_unit_tests_under_sanitizers(tmp_path):
    configure = [
        "cmake", "-S", str(ROOT), "-B", str(tmp_path),
        "-DRECFORGE_BUILD_PYTHON=OFF", "-DRECFORGE_BUILD_TESTS=ON", "-DRECFORGE_SANITIZE=ON",
        "-DCMAKE_BUILD_TYPE=Debug", f"-DPython_EXECUTABLE={sys.executable}",
    ]
    if shutil.which("ninja"):
        configure += ["-G", "Ninja"]
    out = subprocess.run(configure, capture_output=True, text=True, timeout=300)
    if out.returncode != 0 and "Eigen 3 was not found" in out.stderr + out.stdout:
        pytest.skip("Eigen headers not found (pip install cmeel-eigen, or apt-get install libeigen3-dev)")
    assert out.returncode == 0, out.stdout + out.stderr
    build = subprocess.run(["cmake", "--build", str(tmp_path), "-j2"], capture_output=True, text=True, timeout=900)
    assert build.returncode == 0, build.stdout[-4000:] + build.stderr[-4000:]
    run = subprocess.run(["ctest", "--test-dir", str(tmp_path), "--output-on-failure"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
