"""Scoped patches under threads: entered and left in any order they leave nothing behind; prints stay per thread."""

import sys
import threading
import types

import pytest
import torch

from easyedit_detox.core.errors import UserError
from easyedit_detox.methods.scoped import captured_stdout, scoped_patch


def in_two_threads(first_steps, second_steps):
    """Run two threads whose steps interleave as the barrier sequence says: enter A, enter B, leave A, leave B."""
    log, barrier = [], threading.Barrier(2)
    errors = []

    def worker(steps):
        try:
            for step in steps:
                step(log)
                barrier.wait(timeout=30)
        except Exception as exc:  # noqa: BLE001 - reported to the test thread
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=worker, args=(s,)) for s in (first_steps, second_steps)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return log, errors


def test_device_redirection_entered_twice_and_left_in_the_other_order_is_undone():
    from easyedit_detox.methods.device_scope import on_device
    from easyedit_detox.easyedit.upstream import GIT, flavour

    if flavour() == GIT:
        pytest.skip("EasyEdit from git reads hparams.device itself: on_device patches nothing there")
    originals = (vars(torch.nn.Module)["to"], "to" in vars(torch.Tensor))
    scopes = {}

    def enter(name):
        def step(log):
            scopes[name] = on_device("cpu")
            scopes[name].__enter__()
            log.append((name, "in", torch.nn.Module.to is not originals[0]))
        return step

    def leave(name):
        def step(log):
            scopes[name].__exit__(None, None, None)
            log.append((name, "out", torch.nn.Module.to is not originals[0]))
        return step

    nothing = lambda log: None  # noqa: E731
    # A enters, B enters, A leaves (B still inside: the patch stays), B leaves (now it goes).
    log, errors = in_two_threads([enter("A"), nothing, leave("A"), nothing], [nothing, enter("B"), nothing, leave("B")])
    assert not errors and log == [("A", "in", True), ("B", "in", True), ("A", "out", True), ("B", "out", False)]
    assert vars(torch.nn.Module)["to"] is originals[0] and ("to" in vars(torch.Tensor)) == originals[1]


def test_a_second_thread_with_other_settings_is_refused_in_one_line():
    owner = types.SimpleNamespace(value=1)
    with scoped_patch(owner, "value", lambda v: v + 1, key="first", what="the value"):
        assert owner.value == 2
        with scoped_patch(owner, "value", lambda v: v + 100, key="first"):
            assert owner.value == 2  # shared, not applied twice
        with pytest.raises(UserError, match="the value is in use by another thread with other settings"):
            with scoped_patch(owner, "value", lambda v: v + 1, key="second", what="the value"):
                pass
    assert owner.value == 1


def test_captured_prints_stay_in_their_thread():
    real = sys.stdout
    seen = []

    class Sink:
        def write(self, text):
            seen.append(text)

        def flush(self):
            pass

    sys.stdout = Sink()
    try:
        inside = threading.Event()
        done = threading.Event()
        captured = {}

        def capturing():
            with captured_stdout() as buffer:
                print("step 1 of easyeditor")
                inside.set()
                done.wait(timeout=30)
                captured["text"] = buffer.getvalue()

        t = threading.Thread(target=capturing)
        t.start()
        inside.wait(timeout=30)
        print("the other thread's line")  # while the first captures
        done.set()
        t.join(timeout=30)
        assert captured["text"] == "step 1 of easyeditor\n"
        assert "".join(seen) == "the other thread's line\n"
        assert isinstance(sys.stdout, Sink)  # put back once nobody captures
    finally:
        sys.stdout = real
