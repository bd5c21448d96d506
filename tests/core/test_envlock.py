from __future__ import annotations

from modelport.core.envlock import EnvironmentLock, PackagePin, blocking, compare_locks


def _lock(python: str, **versions: str) -> EnvironmentLock:
    return EnvironmentLock(
        python=python,
        packages=tuple(
            PackagePin(name.replace("_", "-"), v, framework=name == "scikit_learn")
            for name, v in versions.items()
        ),
    )


def test_identical_locks_have_no_mismatch() -> None:
    lock = _lock("3.11.7", scikit_learn="1.9.1", numpy="2.4.6")
    assert compare_locks(lock, lock) == []


def test_severities() -> None:
    locked = _lock("3.11.7", scikit_learn="1.9.1", numpy="2.4.6", scipy="1.17.1", joblib="1.6.0")
    current = _lock("3.12.1", scikit_learn="1.8.0", numpy="1.26.4", scipy="1.17.2")
    found = {m.package: m for m in compare_locks(locked, current)}
    assert found["python"].severity == "high"
    assert found["scikit-learn"].severity == "high"
    assert found["scikit-learn"].reason == "minor version differs"
    assert found["numpy"].severity == "medium"
    assert found["scipy"].severity == "low"
    assert found["joblib"].current is None
    assert [m.package for m in blocking(found.values())] == ["python", "scikit-learn"]


def test_patch_difference_of_framework_is_not_blocking() -> None:
    found = compare_locks(
        _lock("3.11.7", scikit_learn="1.9.1"), _lock("3.11.2", scikit_learn="1.9.2")
    )
    assert [(m.package, m.severity) for m in found] == [("scikit-learn", "medium")]
    assert blocking(found) == []
