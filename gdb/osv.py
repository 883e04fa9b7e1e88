# gdb -x "$(osvtrace gdb-script)" kernel.elf   then  target remote :PORT  and  help osv
# (in a checkout: gdb -x gdb/osv.py build/kernel.elf)
#
# Finds the osvtrace package by itself, then loads its gdb commands. gdb embeds the system
# Python, so activating a venv is not enough: its site-packages are added here.
# - Installed (a wheel or an sdist): this file is SITE/osvtrace/_data/gdb/osv.py, and SITE, the
#   site-packages holding osvtrace, holds its dependencies too.
# - In a checkout: the package is next to this file (the repository root) and its packages are
#   in the project's venv, ROOT/.venv (or $OSVTRACE_VENV).
import glob
import os
import site
import sys

_here = os.path.dirname(os.path.abspath(__file__))
_parts = _here.split(os.sep)
if _parts[-3:-1] == ["osvtrace", "_data"]:
    _root = os.sep.join(_parts[:-3])  # the site-packages directory
    _hint = f"reinstall osvtrace into {_root}, or set OSVTRACE_VENV to a venv with osvtrace installed"
    _sites = [_root]
else:
    _root = os.path.dirname(_here)
    _hint = f"run `make venv` in {_root} (or set OSVTRACE_VENV to a venv with osvtrace's packages)"
    _sites = []
_venv = os.environ.get("OSVTRACE_VENV") or (None if _sites else os.path.join(_root, ".venv"))
if _venv:
    _sites += sorted(glob.glob(os.path.join(_venv, "lib", "python3*", "site-packages")))
for _sp in _sites:
    site.addsitedir(_sp)
if _root not in sys.path:
    sys.path.insert(0, _root)

try:
    import osvtrace.gdb  # noqa: E402,F401  (registers the `osv` commands)
except ImportError as _e:
    import gdb

    gdb.write(f"osv: cannot load the osvtrace gdb commands: {_e}\nosv: {_hint}\n")
