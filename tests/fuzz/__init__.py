"""Coverage-guided fuzz harnesses (atheris), one per input the tools take from outside:
.osvt files, the guest's frame stream, viewer requests. `make fuzz` runs them (run.py)."""
