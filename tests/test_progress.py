"""Progress where the time goes: generation (inputs, tokens per second) and edit steps, on a terminal only."""

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios

from easyedit_detox.toy import sample_path
from test_cli import evaluate_args, write_hparams


def run_cli(args, terminal: bool):
    """stderr of `easyedit-detox ARGS`, through a pseudo-terminal or a pipe."""
    command = [sys.executable, "-m", "easyedit_detox", *args]
    env = dict(os.environ, OMP_NUM_THREADS="1", COLUMNS="160")
    if not terminal:
        proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return proc.stderr
    master, slave = pty.openpty()
    # A fresh pseudo-terminal is 0 columns wide, and tqdm fits its bars to the width: give it a real one.
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=slave, env=env)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # the child closed its end
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(timeout=600) == 0
    return b"".join(chunks).decode("utf-8", "replace")


def with_progress(hparams, out):
    return [a for a in evaluate_args(hparams, sample_path(), out, "--cases", "3,4") if a != "--no-progress"]


def test_bars_show_generation_and_edit_steps_on_a_terminal_only(tiny_llama_dir, tmp_path):
    h = write_hparams(tmp_path, tiny_llama_dir, num_steps=3)
    shown = run_cli(with_progress(h, tmp_path / "tty"), terminal=True)
    for expected in ("vanilla responses", "input", "tok/s", "post-edit responses", "DINM edit", "step",
                     "SafeEdit DINM"):
        assert expected in shown, (expected, shown[-3000:])
    piped = run_cli(with_progress(h, tmp_path / "pipe"), terminal=False)
    assert "\r" not in piped and "vanilla responses" not in piped and "tok/s" not in piped


def test_no_progress_draws_nothing_even_on_a_terminal(tiny_llama_dir, tmp_path):
    h = write_hparams(tmp_path, tiny_llama_dir, num_steps=3)
    shown = run_cli(evaluate_args(h, sample_path(), tmp_path / "quiet", "--cases", "3") + ["--no-progress"],
                    terminal=True)
    # A terminal turns each newline into "\r\n" (warnings may print lines); a bar would redraw with a bare "\r".
    assert "\r" not in shown.replace("\r\n", "\n") and "responses" not in shown and "tok/s" not in shown
