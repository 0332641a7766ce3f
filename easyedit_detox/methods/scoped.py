"""Patches that hold only inside a `with` block, safe when threads enter and leave them in any order.

The first thread in installs the patch, the last one out restores what was there; a thread entering while
another holds the same patch with other settings is refused in one line rather than left to undo the other's
patch under it. `captured_stdout` keeps one thread's prints (easyeditor's per-step chatter) without
swallowing what other threads print meanwhile.
"""

from __future__ import annotations

import io
import sys
import threading
from contextlib import contextmanager
from typing import Any, Callable, Dict, Hashable, Iterator, Tuple

from easyedit_detox.core.errors import UserError

_LOCK = threading.RLock()
_ABSENT = object()
# (id of the patched object, attribute) -> {"count", "own", "key", "owner"}
_ACTIVE: Dict[Tuple[int, str], Dict[str, Any]] = {}


@contextmanager
def scoped_patch(owner: Any, name: str, make: Callable[[Any], Any], key: Hashable = None,
                 what: str = "") -> Iterator[None]:
    """Within the block `owner.name` is `make(current value)`; shared by threads entering with the same `key`."""
    slot = (id(owner), name)
    with _LOCK:
        active = _ACTIVE.get(slot)
        if active is None:
            own = vars(owner).get(name, _ABSENT) if hasattr(owner, "__dict__") else _ABSENT
            setattr(owner, name, make(getattr(owner, name)))
            active = _ACTIVE[slot] = {"count": 0, "own": own, "key": key, "owner": owner}
        elif active["key"] != key:
            raise UserError(f"{what or name} is in use by another thread with other settings ({active['key']!r}, "
                            f"here {key!r}); run these edits one after another")
        active["count"] += 1
    try:
        yield
    finally:
        with _LOCK:
            active["count"] -= 1
            if active["count"] == 0:
                if active["own"] is _ABSENT:
                    delattr(owner, name)  # it was inherited (torch.Tensor.to lives on the C base class)
                else:
                    setattr(owner, name, active["own"])
                del _ACTIVE[slot]


class _PerThreadStdout(io.TextIOBase):
    """Stands in for sys.stdout: a thread that asked for capture writes to its buffer, every other to the real one."""

    def __init__(self, real):
        super().__init__()
        self.real = real
        self.buffers: Dict[int, io.StringIO] = {}

    def _target(self):
        return self.buffers.get(threading.get_ident(), self.real)

    def write(self, text):
        return self._target().write(text)

    def flush(self):
        self._target().flush()

    def __getattr__(self, name):
        return getattr(self.real, name)


_STDOUT: Dict[str, Any] = {"proxy": None, "users": 0}


@contextmanager
def captured_stdout() -> Iterator[io.StringIO]:
    """What this thread prints inside the block goes to the yielded buffer; other threads print as before."""
    buffer = io.StringIO()
    ident = threading.get_ident()
    with _LOCK:
        proxy = _STDOUT["proxy"]
        if proxy is None or sys.stdout is not proxy:
            proxy = _STDOUT["proxy"] = _PerThreadStdout(sys.stdout)
            sys.stdout = proxy
            _STDOUT["users"] = 0
        _STDOUT["users"] += 1
        proxy.buffers[ident] = buffer
    try:
        yield buffer
    finally:
        with _LOCK:
            proxy.buffers.pop(ident, None)
            _STDOUT["users"] -= 1
            if _STDOUT["users"] == 0 and sys.stdout is proxy:
                sys.stdout = proxy.real
                _STDOUT["proxy"] = None
