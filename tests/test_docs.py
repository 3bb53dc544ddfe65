"""The documentation builds with warnings as errors, executing the gallery."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_docs_build_with_warnings_as_errors(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
         "-d", str(tmp_path / "doctrees"), str(ROOT / "docs"), str(tmp_path / "html")],
        capture_output=True, text=True, cwd=ROOT, timeout=1800,
    )
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    html = tmp_path / "html"
    for page in ("index.html", "api.html", "user_guide/cotuning.html",
                 "generated/sk_cotuning.CoTuningClassifier.html",
                 "auto_examples/plot_cotuning_vs_finetuning.html"):
        assert (html / page).is_file(), page
    # the gallery executed: its figures exist
    assert list((ROOT / "docs" / "auto_examples" / "images").glob("sphx_glr_plot_*_001.png"))
