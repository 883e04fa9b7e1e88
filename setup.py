"""The one compiled module (the decoder's hot loops); everything else is in pyproject.toml."""

from Cython.Build import cythonize
from setuptools import Extension, setup

setup(ext_modules=cythonize([Extension("osvtrace._decode_loops", ["osvtrace/_decode_loops.pyx"], extra_compile_args=["-O3"])],
                            compiler_directives={"language_level": 3}))
