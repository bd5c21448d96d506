from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path

from modelport.core.envlock import EnvironmentLock, PackagePin
from modelport.packaging.envlock import capture_lock, check_lock, current_python
from modelport.packaging.lineage import code_revision


def test_capture_pins_framework_and_its_dependencies() -> None:
    lock = capture_lock(["scikit-learn"])
    sklearn = lock.get("scikit-learn")
    assert sklearn is not None
    assert sklearn.framework
    assert sklearn.version == metadata.version("scikit-learn")
    for dep in ("numpy", "scipy", "joblib", "threadpoolctl"):
        pin = lock.get(dep)
        assert pin is not None, dep
        assert pin.version == metadata.version(dep)
        assert not pin.framework
    assert lock.python == current_python()
    assert lock.python_minor == f"{sys.version_info[0]}.{sys.version_info[1]}"
    assert "scikit-learn==" + sklearn.version in lock.requirements()
    assert check_lock(lock) == []


def test_unknown_packages_are_skipped() -> None:
    lock = capture_lock(["no-such-distribution-xyz"])
    assert lock.packages == ()


def test_check_reports_a_changed_framework() -> None:
    real = metadata.version("numpy")
    major = int(real.split(".")[0])
    lock = EnvironmentLock(
        python=current_python(),
        packages=(
            PackagePin("numpy", f"{major + 1}.0.0", framework=True),
            PackagePin("not-installed-pkg", "1.0"),
        ),
    )
    found = {m.package: m for m in check_lock(lock)}
    assert found["numpy"].severity == "high"
    assert found["numpy"].current == real
    assert found["not-installed-pkg"].current is None


def test_code_revision_in_and_out_of_a_checkout(tmp_path: Path) -> None:
    assert code_revision(tmp_path) is None
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "f.txt").write_text("x")
    git = ["git", "-C", str(tmp_path), "-c", "user.email=a@b", "-c", "user.name=t"]
    subprocess.run([*git, "add", "f.txt"], check=True)
    subprocess.run([*git, "commit", "-qm", "init"], check=True)
    sha = code_revision(tmp_path)
    assert sha is not None
    assert len(sha) == 40
    (tmp_path / "f.txt").write_text("changed")
    assert code_revision(tmp_path) == f"{sha}+dirty"
