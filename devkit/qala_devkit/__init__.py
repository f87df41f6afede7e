"""Qala's development kit: the source-system simulator (`simulate/`), `make bench` (`bench.py`) and
`make gate-audit` (`gate_audit.py`). It imports the product (`transforms`); the product never
imports it (tests/test_architecture.py), so a deployment needs only the `qala` distribution.
`make setup` installs both for the demo and the tests; `qala simulate`, `qala run`, `qala bench`
and `qala gate-audit` are this kit's commands (`commands.py`, an entry point of `qala.commands`).
"""

# Share of records (and of files) the simulator gives a planted defect by default.
DEFAULT_DEFECT_RATE = 0.002
