import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "ddp_sst.py"


def test_ddp_ranks_stay_identical(tmp_path):
    out = tmp_path / "ddp.json"
    subprocess.run(
        [sys.executable, str(SCRIPT), "--world-size", "2", "--steps", "30", "--out", str(out), "--timeout", "240"],
        check=True,
        timeout=300,
    )
    first, second = json.loads(out.read_text())
    assert first["iterations"] == 3
    assert first["active_indices"] == second["active_indices"]
    assert first["parameters"] == second["parameters"]
    assert first["last_loss"] < first["first_loss"]
