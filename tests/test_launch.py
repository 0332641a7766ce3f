"""Under torchrun, the ranks of one launch agree on one launch id and no two launches share it, although
torchrun sets TORCHELASTIC_RUN_ID=none (so a crashed launch's rank markers never trigger another's merge)."""

import os
import socket
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Each rank writes its line to a file of its own (not stdout, which torchrun may relay late or not at all).
SCRIPT = ("import os, sys\nfrom easyedit_detox.evaluation.distributed import launch_id\n"
          "line = ' '.join(['ID', os.environ['RANK'], os.environ.get('TORCHELASTIC_RUN_ID', 'unset'), launch_id()])\n"
          "open(os.path.join(sys.argv[1], 'rank' + os.environ['RANK']), 'w').write(line)\n")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def one_launch(tmp_path):
    script = tmp_path / "launch_id.py"
    script.write_text(SCRIPT)
    out = tmp_path / f"launch-{len(list(tmp_path.glob('launch-*')))}"
    out.mkdir()
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    # --master_port: the launch mode in which torchrun leaves the run id at "none".
    proc = subprocess.run([torchrun, "--nproc_per_node", "2", "--master_port", str(free_port()), str(script), str(out)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = sorted((out / name).read_text().split() for name in os.listdir(out))
    assert [r[1] for r in rows] == ["0", "1"] and {r[2] for r in rows} == {"none"}, (proc.stdout[-1500:],
                                                                                     proc.stderr[-1500:])
    return {r[3] for r in rows}


def test_ranks_of_a_launch_agree_and_launches_differ_with_run_id_none(tmp_path):
    first, second = one_launch(tmp_path), one_launch(tmp_path)
    assert len(first) == 1 and len(second) == 1 and first != second
    assert "none" not in first | second
