"""Tools for testing modelport extensions: the runtime conformance check."""

from modelport.testing.conformance import check_runtime

__all__ = ["check_runtime"]
