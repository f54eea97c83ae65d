"""Security tests: hostile peers on the host or the network against the real pipeline. They use
the end-to-end tests' process harness (tests/e2e/pipeline.py) and fixtures (fresh_pipeline)."""
import importlib.util
import sys
from pathlib import Path

E2E = Path(__file__).resolve().parents[1] / "e2e"
sys.path.insert(0, str(E2E))

# Loaded by path: that file is a conftest.py too, and pytest keeps only one module of the name.
_spec = importlib.util.spec_from_file_location("e2e_fixtures", E2E / "conftest.py")
_e2e = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_e2e)
fresh_pipeline = _e2e.fresh_pipeline
