"""The Linux guest that tests/bench/bench_linux.py compares the kernel with."""
