# osvtrace: two commands on a fresh Debian machine, `make demo` and `make test`.
# Each sets itself up: Debian packages (apt-get, when root) and a .venv with the package.

PYTHON    ?= python3
VENV      := .venv
PY        := $(VENV)/bin/python
OSVTRACE  := $(VENV)/bin/osvtrace
DEMO_DIR  := build/demo
# command:debian-package pairs the project needs on the host
DEB_DEPS  := qemu-system-x86_64:qemu-system-x86 gdb:gdb g++:g++ make:make valgrind:valgrind tshark:tshark babeltrace2:babeltrace2 chromium:chromium tmux:tmux memcached:memcached
# Debian packages only `make bench` needs: the peers it measures against and the Linux guest's
# userland. Checked by dpkg (python3-bt2 and liblttng-ust-dev have no command to look for);
# each missing one goes to ensure-deps.sh as a command that cannot exist, so it installs the
# package when root and names it otherwise.
BENCH_DEB_DEPS := babeltrace2 python3-bt2 liblttng-ust-dev lttng-tools busybox-static
BENCH_MISSING   = $(foreach p,$(BENCH_DEB_DEPS),$(if $(shell dpkg-query -W -f='$${Status}' $(p) 2>/dev/null | grep -q 'ok installed' && echo y),,missing-$(p):$(p)))
# Debian packages the real-OSv tests need besides what OSv's build.sh installs for its build:
# qemu-nbd (OSv's imgedit.py sets an image's command line with it) and requests for OSv's own
# scripts/trace.py (and dpkt for its pcap-dump), which the tests run beside ours (with Debian's python3).
TEST_DEB_DEPS := qemu-utils python3-requests python3-dpkt
TEST_MISSING   = $(foreach p,$(TEST_DEB_DEPS),$(if $(shell dpkg-query -W -f='$${Status}' $(p) 2>/dev/null | grep -q 'ok installed' && echo y),,missing-$(p):$(p)))
# The default suite runs on 2 pytest-xdist workers: it mostly waits on QEMU, gdb and the OSv build,
# so two at once nearly halve its wall time on 2 cores. A test file stays on one worker (loadscope:
# module fixtures such as a booted VM or a recorded trace are made once). JOBS=0 runs it serially.
JOBS ?= 2
PYTEST_JOBS = $(if $(filter 0,$(JOBS)),,-n $(JOBS) --dist loadscope)
# benchmarks to run, e.g. make bench BENCH="decode peers"; all when empty
BENCH ?=

.PHONY: demo test test-slow test-repeat bench fuzz deps venv build generate clean

deps:
	@scripts/ensure-deps.sh $(DEB_DEPS)

# the decoder's loops (osvtrace/format/_decode_loops.pyx, _osv_loops.pyx) and the stack interner
# (osvtrace/model/_stack_loops.pyx) are compiled when the package is installed:
# gcc comes with g++; the interpreter's C headers with python3-dev when it is Debian's
$(VENV)/.stamp: pyproject.toml setup.py osvtrace/format/_decode_loops.pyx osvtrace/format/_osv_loops.pyx \
               osvtrace/model/_stack_loops.pyx
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || { \
	  echo "osvtrace: cannot create a venv: install python3-venv (apt-get install -y python3-venv)" >&2; exit 1; }
	@$(PY) -c "import os, sys, sysconfig; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()['include'], 'Python.h')))" \
	  || scripts/ensure-deps.sh missing-python-headers:python3-dev
	@$(PY) -m pip install -q --disable-pip-version-check -e '.[test]'
	@touch $@

venv: $(VENV)/.stamp

generate: venv
	@$(PY) -m osvtrace.catalog.codegen
	@$(PY) -m osvtrace.model.docs

demo: deps venv
	@mkdir -p $(DEMO_DIR)
	@echo "== the tracepoint catalog (from tracepoints/*.toml; all of it: osvtrace tracepoints)"
	@$(OSVTRACE) tracepoints | head -12
	@echo "== build the kernel (regenerates the tracepoint code; make skips what is up to date)"
	@$(OSVTRACE) build
	@echo "== boot the mutex app on 2 vCPUs and stream its trace over virtio-serial"
	@$(OSVTRACE) record -o $(DEMO_DIR)/mutex.osvt --smp 2 --trace 'sched_*,mutex_*,thread_*' \
	    mutex --threads 4 --mutexes 2 --iterations 1000 --hold-ns 5000 --think-ns 2000
	@echo "== what the trace holds"
	@$(OSVTRACE) report summary $(DEMO_DIR)/mutex.osvt
	@echo "== which mutex hurt, and how the CPUs were used"
	@$(OSVTRACE) report mutex $(DEMO_DIR)/mutex.osvt --limit 3
	@$(OSVTRACE) report cpu $(DEMO_DIR)/mutex.osvt --buckets 60
	@echo "== the viewer page"
	@$(OSVTRACE) view $(DEMO_DIR)/mutex.osvt --static -o $(DEMO_DIR)/mutex.html
	@echo "open $(DEMO_DIR)/mutex.html in a browser, or run: $(OSVTRACE) view $(DEMO_DIR)/mutex.osvt"

test: deps venv
	@scripts/ensure-deps.sh $(TEST_MISSING)
	@$(PY) -m pytest -q $(PYTEST_JOBS)

test-slow: deps venv
	@scripts/ensure-deps.sh $(TEST_MISSING)
	@$(PY) -m pytest -q -m slow

# The default suite N times (same selection as `make test`); then a table of every test that
# failed in any run (failures/N) and each run's wall time; non-zero if any test failed.
# Each run's JUnit XML and console: test-artifacts/repeat/.
N ?= 5
test-repeat: deps venv
	@scripts/ensure-deps.sh $(TEST_MISSING)
	@$(PY) scripts/test_repeat.py -n $(N) --jobs $(JOBS)

bench: deps venv
	@scripts/ensure-deps.sh $(BENCH_MISSING)
	@$(PY) -m tests.bench $(BENCH)

# The long fuzz run (docs/reliability.md): 1 M inputs over the three atheris harnesses, niced
# (it shares the machine), seeds made from real traces at run time. FUZZ_RUNS=N for another count.
FUZZ_RUNS ?= 1000000
fuzz: venv
	@$(PY) -c "import atheris" 2>/dev/null || $(PY) -m pip install -q --disable-pip-version-check -e '.[fuzz]'
	@nice -n 10 $(PY) -m tests.fuzz.run --runs $(FUZZ_RUNS)

clean:
	rm -rf build
