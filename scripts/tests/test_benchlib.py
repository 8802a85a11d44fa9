"""scripts/bench/benchlib.py's load_note: what a section says of its load is derived from the load before the
run (the load after counts the benchmark's own work), and never names who else used the machine."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench"))
import benchlib  # noqa: E402


def test_a_run_that_began_on_a_quiet_machine_is_not_called_busy_by_its_own_load():
    cpus = os.cpu_count() or 1
    note = benchlib.load_note(0.1 * cpus)
    assert note.startswith("The machine was otherwise quiet when the run began")
    assert "engineer" not in note and "other people" not in note


def test_a_run_that_began_under_load_says_its_figures_are_upper_bounds():
    cpus = os.cpu_count() or 1
    note = benchlib.load_note(2.0 * cpus)
    assert note.startswith("The machine was busy when the run began (load average %.2f on %d CPUs)" % (2.0 * cpus,
                                                                                                      cpus))
    assert "upper bounds" in note
