"""Run one harness under atheris: ``python -m tests.fuzz.harness NAME [libFuzzer options] [corpus]``.

osvtrace is imported under atheris' instrumentation here, before anything else imports it,
so the fuzzer sees coverage of osvtrace's own code (numpy, protobuf and the standard
library are left uninstrumented: they are not what is under test)."""

from __future__ import annotations

import importlib
import sys

HARNESSES = {"osvt": "tests.fuzz.osvt_reader", "stream": "tests.fuzz.stream_parser", "viewer": "tests.fuzz.viewer_api",
             "osv": "tests.fuzz.osv_reader"}


def main() -> None:
    import atheris

    if len(sys.argv) < 2 or sys.argv[1] not in HARNESSES:
        sys.exit(f"usage: python -m tests.fuzz.harness {{{','.join(HARNESSES)}}} [libFuzzer options] [corpus dir]")
    name = sys.argv.pop(1)
    with atheris.instrument_imports(include=["osvtrace", "tests.fuzz"]):
        mod = importlib.import_module(HARNESSES[name])
        if hasattr(mod, "prepare"):
            mod.prepare()  # imports and builds what one_input needs, instrumented too
    atheris.Setup(sys.argv, mod.one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
