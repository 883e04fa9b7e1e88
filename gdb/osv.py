# gdb -x gdb/osv.py build/kernel.elf   then  target remote :PORT  and  help osv
#
# Finds the osvtrace package next to this file (the repository root) and the
# project's venv (for numpy and friends; or $OSVTRACE_VENV), then loads the
# package's gdb commands. gdb embeds the system Python, so activating the venv
# is not enough: its site-packages are added here.
import glob
import os
import site
import sys

_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_venv = os.environ.get("OSVTRACE_VENV") or os.path.join(_root, ".venv")
for _sp in sorted(glob.glob(os.path.join(_venv, "lib", "python3*", "site-packages"))):
    site.addsitedir(_sp)
if _root not in sys.path:
    sys.path.insert(0, _root)

try:
    import osvtrace.gdb  # noqa: E402,F401  (registers the `osv` commands)
except ImportError as _e:
    import gdb

    gdb.write(f"osv: cannot load the osvtrace gdb commands: {_e}\n"
              f"osv: run `make venv` in {_root} (or set OSVTRACE_VENV to a venv with osvtrace's packages)\n")
