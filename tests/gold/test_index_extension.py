"""The setup index of a day between refits is the previous session's plus that session's episodes, bit for bit."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path

import pytest

from spymaster_assets.gold import as_of
from spymaster_assets.gold.normalization import stats_to_frame
from spymaster_assets.gold.schema_indexes import SchemaIndexes
from spymaster_resources import SpymasterResource

from tests.conftest import CHAIN_CONFIG, CHAIN_SESSIONS

# Statistics over 2 sessions refitted every 2 once full: the sessions with 2 and 3 earlier sessions
# share one fit, so 2013-10-10 extends the index of 2013-10-09 (the model, retrained every 2, too).
SETTINGS = {**CHAIN_CONFIG, "normalization_sessions": 2, "normalization_refit_sessions": 2, "xgb_rounds": 20}


def _lake_with_episodes(materialized_home: Path, home: Path) -> SpymasterResource:
    home.mkdir(parents=True)
    (home / "config.json").write_text(json.dumps(SETTINGS))
    shutil.copytree(Path(materialized_home) / "lake" / "gold" / "gold_episodes", home / "lake" / "gold" / "gold_episodes")
    return SpymasterResource(home=str(home))


def _walk(spymaster: SpymasterResource, sole_user: bool = False) -> dict:
    """gold_normalization and gold_setup_index of every chain session, in date order, as the assets build them
    (``sole_user``: inside ``as_of.sole_user_of_indexes``, as the assets' bodies, so extended in place)."""
    lake, config = spymaster.lake, spymaster.config
    origins = {}
    for day in CHAIN_SESSIONS:
        stats = as_of.fit_as_of(lake, day, config)
        lake.write("gold", "gold_normalization", day, stats_to_frame(stats))
        with as_of.sole_user_of_indexes() if sole_user else contextlib.nullcontext():
            indexes = as_of.build_index_as_of(lake, day, as_of.stats_as_of(lake, day), config)
        indexes.save(as_of.index_dir(lake, day))
        origins[day] = indexes.origin
    return origins


def _files(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("sole_user", [False, True], ids=["copied", "in-place"])
def test_an_index_extended_between_refits_equals_a_rebuild_bit_for_bit(materialized_home, tmp_path, sole_user):
    as_of._RECENT_INDEXES.clear()
    spymaster = _lake_with_episodes(materialized_home, tmp_path / "home")
    origins = _walk(spymaster, sole_user)
    extended = [day for day, origin in origins.items() if origin.startswith("extended")]
    assert extended == [CHAIN_SESSIONS[3]], origins  # the only day whose statistics and weights equal the day before's
    lake, config = spymaster.lake, spymaster.config
    for day in CHAIN_SESSIONS:
        sessions = lake.dates_before("gold", "gold_episodes", day)
        stats = as_of.stats_as_of(lake, day)
        saved = SchemaIndexes.load(as_of.index_dir(lake, day), config)
        rebuilt = SchemaIndexes.build(
            lake.read_many("gold", "gold_episodes", sessions), stats, config, as_of=day,
            weights=saved.weights, weights_source=saved.weights_source, provenance=saved.provenance,
        )
        target = rebuilt.save(tmp_path / "rebuilt" / day.isoformat())
        assert _files(target) == _files(as_of.index_dir(lake, day)), day
        assert saved.sessions == sorted(d for d in sessions if lake.read("gold", "gold_episodes", d).height)


def test_an_earlier_session_rebuilt_since_forces_a_rebuild(materialized_home, tmp_path):
    spymaster = _lake_with_episodes(materialized_home, tmp_path / "home")
    _walk(spymaster)
    lake, config = spymaster.lake, spymaster.config
    day = CHAIN_SESSIONS[3]
    path = lake.partition_path("gold", "gold_episodes", CHAIN_SESSIONS[0])
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # rewritten after the index of 10-09 was built
    indexes = as_of.build_index_as_of(lake, day, as_of.stats_as_of(lake, day), config)
    assert indexes.origin.startswith("built from 3 session"), indexes.origin
    # The fresh build records the new history, so the next build extends again.
    indexes.save(as_of.index_dir(lake, day))
    shutil.rmtree(as_of.index_dir(lake, CHAIN_SESSIONS[2]))
    again = as_of.build_index_as_of(lake, day, as_of.stats_as_of(lake, day), config)
    assert again.origin.startswith("built from"), "no saved index of the previous session: rebuilt"


def test_the_past_index_does_not_move_when_a_later_session_changes(materialized_home, tmp_path):
    spymaster = _lake_with_episodes(materialized_home, tmp_path / "home")
    _walk(spymaster)
    lake = spymaster.lake
    before = {day: _files(as_of.index_dir(lake, day)) for day in CHAIN_SESSIONS[:4]}
    last = lake.read("gold", "gold_episodes", CHAIN_SESSIONS[4])
    lake.write("gold", "gold_episodes", CHAIN_SESSIONS[4], last.head(last.height // 2))  # the future changes
    for day in CHAIN_SESSIONS[:4]:
        indexes = as_of.build_index_as_of(lake, day, as_of.stats_as_of(lake, day), spymaster.config)
        target = indexes.save(tmp_path / "again" / day.isoformat())
        assert _files(target) == before[day], day


def test_the_distance_lookup_carried_session_by_session_equals_one_fitted_on_every_earlier_episode(materialized_home, tmp_path):
    from spymaster_assets.gold.distance_baseline import distance_table_from_counts, fit_distance_table

    spymaster = _lake_with_episodes(materialized_home, tmp_path / "home")
    lake, config = spymaster.lake, spymaster.config
    as_of._CARRIED_COUNTS.clear()
    for day in CHAIN_SESSIONS:  # date order: each day adds the previous session's counts to the carried ones
        carried = distance_table_from_counts(as_of.distance_counts_as_of(lake, day, config), config)
        history = lake.read_many("gold", "gold_episodes", lake.dates_before("gold", "gold_episodes", day), ["level_kind", "direction", "distance_atr", "outcome"])
        if history is None:
            assert carried.height == 0
            continue
        assert carried.equals(fit_distance_table(history, config)), day
    # An earlier session rewritten since: the carried counts are not reused.
    path = lake.partition_path("gold", "gold_episodes", CHAIN_SESSIONS[0])
    lake.write("gold", "gold_episodes", CHAIN_SESSIONS[0], lake.read("gold", "gold_episodes", CHAIN_SESSIONS[0]).head(3))
    day = CHAIN_SESSIONS[-1]
    history = lake.read_many("gold", "gold_episodes", lake.dates_before("gold", "gold_episodes", day), ["level_kind", "direction", "distance_atr", "outcome"])
    assert distance_table_from_counts(as_of.distance_counts_as_of(lake, day, config), config).equals(fit_distance_table(history, config))
    assert path.is_file()


def test_a_new_process_extends_the_kept_refit_copy_and_gets_the_rebuild_bit_for_bit(materialized_home, tmp_path, monkeypatch):
    """The index built whole last is kept with its vectors outside the lake; a new process (the daily
    job) extends it by the sessions since instead of normalizing every earlier episode again. A copy
    whose history was rebuilt since is not used."""
    monkeypatch.setenv("SPYMASTER_CACHE_DIR", str(tmp_path / "cache"))
    spymaster = _lake_with_episodes(materialized_home, tmp_path / "home")
    lake, config = spymaster.lake, spymaster.config
    for day in CHAIN_SESSIONS[:3]:  # built whole on each (statistics refitted daily while filling)
        stats = as_of.fit_as_of(lake, day, config)
        lake.write("gold", "gold_normalization", day, stats_to_frame(stats))
        as_of.build_index_as_of(lake, day, as_of.stats_as_of(lake, day), config)
    assert [kept for kept, _ in as_of.kept_refit_copies(lake)][-1] == CHAIN_SESSIONS[2]
    day = CHAIN_SESSIONS[3]  # shares the statistics and weights of CHAIN_SESSIONS[2]
    lake.write("gold", "gold_normalization", day, stats_to_frame(as_of.fit_as_of(lake, day, config)))
    as_of._RECENT_INDEXES.clear()  # a new process
    extended = as_of.build_index_as_of(lake, day, as_of.stats_as_of(lake, day), config)
    assert extended.origin.startswith(f"extended the index of {CHAIN_SESSIONS[2]} by 1 session"), extended.origin
    as_of._RECENT_INDEXES.clear()
    monkeypatch.setenv("SPYMASTER_CACHE_DIR", str(tmp_path / "empty"))
    rebuilt = as_of.build_index_as_of(lake, day, as_of.stats_as_of(lake, day), config)
    assert rebuilt.origin.startswith("built from")
    assert _files(extended.save(tmp_path / "a")) == _files(rebuilt.save(tmp_path / "b"))
    # An earlier session rewritten since the copy was built: it is not extended.
    monkeypatch.setenv("SPYMASTER_CACHE_DIR", str(tmp_path / "cache"))
    path = lake.partition_path("gold", "gold_episodes", CHAIN_SESSIONS[0])
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000_000))
    as_of._RECENT_INDEXES.clear()
    assert as_of.build_index_as_of(lake, day, as_of.stats_as_of(lake, day), config).origin.startswith("built from")


def test_a_new_process_carries_the_counts_an_earlier_one_kept(materialized_home, tmp_path, monkeypatch):
    """The distance lookup's counts are kept outside the lake: a new process adds the sessions since
    instead of reading every earlier episode, and gets the same table; a rebuilt history is recounted."""
    from spymaster_assets.gold.distance_baseline import distance_table_from_counts, fit_distance_table

    monkeypatch.setenv("SPYMASTER_CACHE_DIR", str(tmp_path / "cache"))
    spymaster = _lake_with_episodes(materialized_home, tmp_path / "home")
    lake, config = spymaster.lake, spymaster.config
    as_of._CARRIED_COUNTS.clear()
    as_of.distance_counts_as_of(lake, CHAIN_SESSIONS[2], config)  # kept as of the third session
    as_of._CARRIED_COUNTS.clear()  # a new process
    read: list = []
    real = lake.read_many
    monkeypatch.setattr(lake, "read_many", lambda tier, table, dates, columns=None: read.append(list(dates)) or real(tier, table, dates, columns))
    day = CHAIN_SESSIONS[-1]
    carried = distance_table_from_counts(as_of.distance_counts_as_of(lake, day, config), config)
    assert read == [CHAIN_SESSIONS[2:4]]  # only the sessions since the kept day
    history = real("gold", "gold_episodes", CHAIN_SESSIONS[:4], ["level_kind", "direction", "distance_atr", "outcome"])
    assert carried.equals(fit_distance_table(history, config))
    # The first session rewritten since: recounted from every earlier session.
    path = lake.partition_path("gold", "gold_episodes", CHAIN_SESSIONS[0])
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000_000))
    as_of._CARRIED_COUNTS.clear()
    read.clear()
    assert distance_table_from_counts(as_of.distance_counts_as_of(lake, day, config), config).equals(carried)
    assert read == [CHAIN_SESSIONS[:4]]


def test_the_kept_copy_of_a_removed_lake_is_removed_with_the_next_one(materialized_home, tmp_path, monkeypatch):
    monkeypatch.setenv("SPYMASTER_CACHE_DIR", str(tmp_path / "cache"))
    first = _lake_with_episodes(materialized_home, tmp_path / "first")
    second = _lake_with_episodes(materialized_home, tmp_path / "second")
    copies = []
    for spymaster in (first, second):
        lake, config = spymaster.lake, spymaster.config
        day = CHAIN_SESSIONS[1]
        lake.write("gold", "gold_normalization", day, stats_to_frame(as_of.fit_as_of(lake, day, config)))
        as_of._RECENT_INDEXES.clear()
        as_of.build_index_as_of(lake, day, as_of.stats_as_of(lake, day), config)
        copies.append(as_of.refit_copy_dir(lake))
        if spymaster is first:
            shutil.rmtree(tmp_path / "first")  # the data root removed
    assert not copies[0].exists() and (copies[1] / CHAIN_SESSIONS[1].isoformat() / "manifest.json").is_file()


def test_an_index_extended_in_place_is_retired_and_one_copied_stays_usable(materialized_home, tmp_path):
    """In place, the earlier index's FAISS partitions take the new vectors, so using it again is an
    error, not a silently different answer; the copying extension leaves it as it was."""
    spymaster = _lake_with_episodes(materialized_home, tmp_path / "home")
    lake, config = spymaster.lake, spymaster.config
    day, previous = CHAIN_SESSIONS[3], CHAIN_SESSIONS[2]
    stats = as_of.fit_as_of(lake, previous, config)
    history = lake.read_many("gold", "gold_episodes", lake.dates_before("gold", "gold_episodes", previous))
    added = lake.read("gold", "gold_episodes", previous)
    results = {}
    for in_place in (False, True):
        earlier = SchemaIndexes.build(history, stats, config, as_of=previous)
        before = _files(earlier.save(tmp_path / f"before-{in_place}"))
        grown = earlier.extended(added, stats, day, in_place=in_place)
        results[in_place] = _files(grown.save(tmp_path / f"grown-{in_place}"))
        if in_place:
            with pytest.raises(RuntimeError, match="extended in place"):
                earlier.indexes["bars"].partition_keys
        else:
            assert _files(earlier.save(tmp_path / "after")) == before
    assert results[True] == results[False]


def test_the_kept_copy_serves_the_next_day_as_that_day_when_the_sessions_between_were_removed(materialized_home, tmp_path, monkeypatch):
    """A failed session's partitions are removed (its episodes too): the copy kept as of that session
    then holds exactly the next day's history, and the index it gives must say the next day (the
    signals' point-in-time check compares it with the statistics' day), equal to a rebuild."""
    monkeypatch.setenv("SPYMASTER_CACHE_DIR", str(tmp_path / "cache"))
    spymaster = _lake_with_episodes(materialized_home, tmp_path / "home")
    lake, config = spymaster.lake, spymaster.config
    for day in CHAIN_SESSIONS[:3]:
        lake.write("gold", "gold_normalization", day, stats_to_frame(as_of.fit_as_of(lake, day, config)))
        as_of.build_index_as_of(lake, day, as_of.stats_as_of(lake, day), config)
    assert [kept for kept, _ in as_of.kept_refit_copies(lake)][-1] == CHAIN_SESSIONS[2]
    shutil.rmtree(lake.partition_dir("gold", "gold_episodes", CHAIN_SESSIONS[2]))  # the failed session's episodes
    day = CHAIN_SESSIONS[3]
    lake.write("gold", "gold_normalization", day, stats_to_frame(as_of.fit_as_of(lake, day, config)))
    as_of._RECENT_INDEXES.clear()  # a new process
    served = as_of.build_index_as_of(lake, day, as_of.stats_as_of(lake, day), config)
    assert served.as_of == day and {label: index.as_of for label, index in served.indexes.items()} == {label: day for label in served.indexes}
    as_of._RECENT_INDEXES.clear()
    monkeypatch.setenv("SPYMASTER_CACHE_DIR", str(tmp_path / "empty"))
    rebuilt = as_of.build_index_as_of(lake, day, as_of.stats_as_of(lake, day), config)
    assert rebuilt.origin.startswith("built from")
    assert _files(served.save(tmp_path / "a")) == _files(rebuilt.save(tmp_path / "b"))


def test_the_signals_walk_loads_the_copy_the_setup_walk_kept_for_each_refit(materialized_home, tmp_path, monkeypatch):
    """A range run walks gold_setup_index over every session, then gold_signals: the second walk
    loads the copy the first kept on each refit day instead of building the same index again (equal
    bit for bit), and removes the copies behind it; the newest always stays for the daily job."""
    monkeypatch.setenv("SPYMASTER_CACHE_DIR", str(tmp_path / "cache"))
    spymaster = _lake_with_episodes(materialized_home, tmp_path / "home")
    lake, config = spymaster.lake, spymaster.config
    first_walk = {}
    for day in CHAIN_SESSIONS:
        lake.write("gold", "gold_normalization", day, stats_to_frame(as_of.fit_as_of(lake, day, config)))
        first_walk[day] = as_of.build_index_as_of(lake, day, as_of.stats_as_of(lake, day), config)
        first_walk[day].save(tmp_path / "first" / day.isoformat())
    rebuilt_days = [day for day, indexes in first_walk.items() if indexes.origin.startswith("built from")]
    assert [kept for kept, _ in as_of.kept_refit_copies(lake)] == rebuilt_days and len(rebuilt_days) >= 2
    as_of._RECENT_INDEXES.clear()  # the second walk starts from the first day again
    for day in CHAIN_SESSIONS:
        again = as_of.build_index_as_of(lake, day, as_of.stats_as_of(lake, day), config)
        assert not again.origin.startswith("built from"), (day, again.origin)
        assert _files(again.save(tmp_path / "second" / day.isoformat())) == _files(tmp_path / "first" / day.isoformat())
        assert [kept for kept, _ in as_of.kept_refit_copies(lake)] == [d for d in rebuilt_days if d >= max(r for r in rebuilt_days if r <= day)]
    assert [kept for kept, _ in as_of.kept_refit_copies(lake)] == rebuilt_days[-1:]


def test_the_kept_copies_stay_within_their_byte_budget_the_newest_always_kept(materialized_home, tmp_path, monkeypatch):
    monkeypatch.setenv("SPYMASTER_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(as_of, "REFIT_COPIES_MAX_BYTES", 1)
    spymaster = _lake_with_episodes(materialized_home, tmp_path / "home")
    lake, config = spymaster.lake, spymaster.config
    for day in CHAIN_SESSIONS:
        lake.write("gold", "gold_normalization", day, stats_to_frame(as_of.fit_as_of(lake, day, config)))
        as_of.build_index_as_of(lake, day, as_of.stats_as_of(lake, day), config)
        assert len(as_of.kept_refit_copies(lake)) == 1
