"""Request ids: unique in a process and across processes (forked or spawned), header-safe."""

from __future__ import annotations

import multiprocessing

from modelport.serving.requestid import new_request_id, valid_request_id


def _child_ids(queue: multiprocessing.Queue[list[str]]) -> None:
    queue.put([new_request_id() for _ in range(100)])


def test_ids_are_unique_within_and_across_processes() -> None:
    mine = [new_request_id() for _ in range(10_000)]
    assert len(set(mine)) == len(mine)
    assert all(valid_request_id(i) == i for i in mine[:100])
    for method in ("fork", "spawn"):
        ctx = multiprocessing.get_context(method)
        queue: multiprocessing.Queue[list[str]] = ctx.Queue()
        child = ctx.Process(target=_child_ids, args=(queue,))
        child.start()
        theirs = queue.get(timeout=60)
        child.join(timeout=60)
        assert not set(theirs) & set(mine), method
        assert len(set(theirs)) == len(theirs)


def test_client_ids_are_used_only_when_header_safe() -> None:
    assert valid_request_id("order-42") == "order-42"
    for bad in (None, "", "has space", "x" * 257, "new\nline", "é"):
        assert valid_request_id(bad) is None
