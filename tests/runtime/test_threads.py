from __future__ import annotations

import pytest
from threadpoolctl import threadpool_info

from modelport.core.errors import InvalidInputError
from modelport.runtime.threads import ThreadLimit, check_threads


def _openmp_and_blas_threads() -> set[int]:
    return {
        lib["num_threads"] for lib in threadpool_info() if lib["user_api"] in ("openmp", "blas")
    }


def test_thread_limit_caps_openmp_and_blas_only_inside_the_call() -> None:
    import sklearn.ensemble  # noqa: F401 - loads scikit-learn's OpenMP runtime

    limit = ThreadLimit(1)
    limit.start()
    before = _openmp_and_blas_threads()
    with limit.limit():
        assert _openmp_and_blas_threads() == {1}
    assert _openmp_and_blas_threads() == before


def test_no_threads_means_no_limit() -> None:
    limit = ThreadLimit(None)
    limit.start()
    before = _openmp_and_blas_threads()
    with limit.limit():
        assert _openmp_and_blas_threads() == before


@pytest.mark.parametrize("threads", [0, -2, 1.5, True, "4"])
def test_threads_must_be_positive_integers(threads: object) -> None:
    with pytest.raises(InvalidInputError, match="positive integer"):
        check_threads(threads)  # type: ignore[arg-type]
    assert check_threads(None) is None
    assert check_threads(3) == 3
