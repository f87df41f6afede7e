"""A small sample of `make chaos` (devkit/qala_devkit/chaos.py): loads and replays of five feeds of
different formats killed with SIGKILL at random instants, run again to completion, must leave
silver, quarantine, the file profiles and each landed file's ledger outcome exactly as an
undisturbed run does. The campaign itself (200 trials, the dbt build and the scorecard
included) is `make chaos`."""

from __future__ import annotations

from qala_devkit import chaos


def test_loads_and_replays_killed_at_random_instants_end_as_undisturbed_ones(tmp_path):
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # in a process of its own: the campaign forks its children from a parent with no DuckDB in it
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        report = pool.submit(chaos.campaign, 10, tmp_path, seed=3, kinds=["load", "replay"]).result()
    assert report.reference_checks == []  # the undisturbed runs agree, and each load changed the lake
    assert report.trials == 10 and report.differences == []
    assert report.mid_work >= 5  # most kills land while the work runs (the rest: after it ended)


def test_the_comparison_sees_one_changed_row(tmp_path, warehouse):
    """The fingerprint is not vacuous: one quarantined row's reason changed, one silver row gone."""
    from tests.conftest import HEADER, accident_rows, land
    from transforms import lake
    from transforms.load import load_files

    land(warehouse, "2025-03-01", "a.csv", HEADER + "\n" + accident_rows(3) + "RA-9,not a time,710110000,injury,1,0,2,x,51,71\n")
    load_files("safety/road_accidents", [warehouse / "landing/safety/road_accidents/2025-03-01/a.csv"], run_id="r")
    before = chaos.fingerprint(warehouse)
    con = lake.connect(warehouse)
    con.execute("update quarantine.safety__road_accidents set _reason = _reason || '!'")
    assert chaos.differences(chaos.fingerprint(warehouse), before) == [
        f"quarantine.safety__road_accidents: {chaos.fingerprint(warehouse)['quarantine.safety__road_accidents']} "
        f"!= {before['quarantine.safety__road_accidents']}"]
    con.execute("delete from silver.safety__road_accidents where accident_id = 'RA-1'")
    con.close()
    changed = chaos.differences(chaos.fingerprint(warehouse), before)
    assert [line.split(":")[0] for line in changed] == ["quarantine.safety__road_accidents",
                                                       "silver.safety__road_accidents"]
