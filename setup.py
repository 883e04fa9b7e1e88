"""The compiled modules (the decoder's hot loops, the stack interner) and the package data; everything else is
in pyproject.toml.

The repository keeps kernel/, tracepoints/, viewer/ and gdb/ at its top level; a built wheel
carries them as osvtrace/_data/NAME (osvtrace/resources.py finds them either way). An editable
install copies nothing: it reads the checkout's directories.
"""

import os
import shutil

from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_py import build_py

DATA_TREES = ("kernel", "tracepoints", "viewer", "gdb")  # osvtrace/resources.py: DATA_TREES
SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", "*.o", "*.d")


class build_py_with_data(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        for name in DATA_TREES:
            if not os.path.isdir(name):
                raise SystemExit(f"setup.py: {name}/ is missing: build from a checkout or a complete sdist")
            dst = os.path.join(self.build_lib, "osvtrace", "_data", name)
            shutil.rmtree(dst, ignore_errors=True)
            shutil.copytree(name, dst, ignore=SKIP)


LOOPS = ("format/_decode_loops", "format/_osv_loops", "model/_stack_loops")

setup(ext_modules=cythonize([Extension("osvtrace." + name.replace("/", "."), [f"osvtrace/{name}.pyx"],
                                       extra_compile_args=["-O3"]) for name in LOOPS],
                            compiler_directives={"language_level": 3}),
      cmdclass={"build_py": build_py_with_data})
