"""The browser tests reuse the integration harness (tests/integration/conftest.py): its fixtures,
helpers and hooks are loaded here under this conftest's name, so `from conftest import ...` in
the integration modules (test_ha_cluster.py) works from this folder too."""
import importlib.util
import sys
from pathlib import Path

_IT = Path(__file__).resolve().parents[1] / "integration"
sys.path.insert(0, str(_IT))
_spec = importlib.util.spec_from_file_location("pgw_it_conftest", _IT / "conftest.py")
_mod = importlib.util.module_from_spec(_spec)
sys.modules["pgw_it_conftest"] = _mod
_spec.loader.exec_module(_mod)
globals().update({k: v for k, v in vars(_mod).items() if not k.startswith("__")})
