"""SetupIndex: exact search vs brute force, per-session cap, persistence, atomic save, HNSW path."""

import json
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone

import numpy as np
import polars as pl
import pytest

from spymaster_core.config import SpymasterConfig
from spymaster_assets.gold import setup_index as setup_index_module
from spymaster_assets.gold.setup_index import SetupIndex

CONFIG = SpymasterConfig(top_k=10, max_neighbours_per_session=2)
OUTCOME_NAMES = np.array(["BREAK", "REJECT", "CHOP"])


def _unit_rows(rng, n, dim):
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _meta(session_days, outcomes, key="PM_HIGH|UP|0-15"):
    n = len(session_days)
    base = date(2024, 1, 1)
    return pl.DataFrame(
        {
            "partition_key": [key] * n,
            "session_date": [base + timedelta(days=int(d)) for d in session_days],
            "ts_event": [datetime(2024, 1, 1, 15, 0, tzinfo=timezone.utc) + timedelta(minutes=2 * i) for i in range(n)],
            "level_kind": [key.split("|")[0]] * n,
            "direction": [key.split("|")[1]] * n,
            "time_bucket": [key.split("|")[2]] * n,
            "distance_atr": [((i % 8) - 4) * 0.25 for i in range(n)],
            "outcome": list(outcomes),
        }
    ).with_columns(pl.col("ts_event").cast(pl.Datetime("ns", "UTC")))


def _brute_force(vectors, sessions, query, k, cap, cutoff=None):
    """Reference: sort all rows by inner product, walk down keeping <= cap per session and sessions < cutoff."""
    sims = vectors @ query
    order = np.argsort(-sims, kind="stable")
    kept, seen = [], {}
    for i in order:
        s = sessions[i]
        if cutoff is not None and s >= cutoff:
            continue
        if seen.get(s, 0) >= cap:
            continue
        seen[s] = seen.get(s, 0) + 1
        kept.append(i)
        if len(kept) == k:
            break
    return np.array(kept), sims[kept]


def test_exact_search_equals_numpy_top_k():
    rng = np.random.default_rng(7)
    vectors = _unit_rows(rng, 400, 16)
    sessions = np.arange(400)  # one row per session: the cap never binds
    index = SetupIndex.build(vectors, _meta(sessions, rng.choice(OUTCOME_NAMES, 400)), CONFIG)
    queries = _unit_rows(rng, 20, 16)
    ids, sims = index.search_batch("PM_HIGH|UP|0-15", queries)
    for q in range(20):
        top = np.argsort(-(vectors @ queries[q]))[:10]
        np.testing.assert_array_equal(ids[q], top)
        np.testing.assert_allclose(sims[q], vectors[top] @ queries[q], rtol=1e-5)
    assert index.stats["PM_HIGH|UP|0-15"].kind == "flat"


def test_at_most_two_neighbours_per_session_with_overfetch():
    rng = np.random.default_rng(3)
    # 30 sessions x 40 near-identical anchors each: the raw top 40 is a single session,
    # so the cap forces several rounds of over-fetching (k*4 = 40, then 80, 160, ...).
    centres = _unit_rows(rng, 30, 8)
    vectors = np.repeat(centres, 40, axis=0) + 0.01 * rng.standard_normal((1200, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    sessions = np.repeat(np.arange(30), 40)
    index = SetupIndex.build(vectors, _meta(sessions, rng.choice(OUTCOME_NAMES, 1200)), CONFIG)
    queries = centres[:5]
    frames = index.search("PM_HIGH|UP|0-15", queries)
    for q, frame in enumerate(frames):
        assert frame.height == 10
        assert frame.group_by("session_date").len()["len"].max() <= 2
        assert frame["rank"].to_list() == list(range(1, 11))
        expected_ids, expected_sims = _brute_force(vectors, sessions, queries[q], 10, 2)
        np.testing.assert_array_equal(frame["row_id"].to_numpy(), expected_ids)
        np.testing.assert_allclose(frame["similarity"].to_numpy(), expected_sims, rtol=1e-5)
    # Cap 1 and an exclusion date: only sessions before day 10 (2024-01-11), one anchor each.
    ids, _ = index.search_batch("PM_HIGH|UP|0-15", queries, k=10, max_per_session=1, exclude_on_or_after=date(2024, 1, 11))
    for q in range(5):
        expected_ids, _ = _brute_force(vectors, sessions, queries[q], 10, 1, cutoff=10)
        np.testing.assert_array_equal(ids[q], expected_ids)
        assert len(set(sessions[ids[q]])) == 10


def test_fewer_candidates_than_k_pads_and_unknown_partition_is_empty():
    rng = np.random.default_rng(1)
    vectors = _unit_rows(rng, 5, 4)
    index = SetupIndex.build(vectors, _meta([0, 0, 0, 1, 1], ["BREAK"] * 5), CONFIG)
    ids, sims = index.search_batch("PM_HIGH|UP|0-15", vectors[:1])
    assert (ids[0] >= 0).sum() == 4 and np.isnan(sims[0, 4:]).all()  # 2 from each of 2 sessions
    frames = index.search("OR_LOW|DOWN|0-15", vectors[:2])
    assert [f.height for f in frames] == [0, 0]


def test_base_rates_are_add_one_smoothed_frequencies():
    rng = np.random.default_rng(2)
    outcomes = ["BREAK"] * 5 + ["REJECT"] * 2 + ["CHOP"]
    meta = pl.concat([_meta(range(8), outcomes), _meta([0], ["CHOP"], key="SMA_90|DOWN|60-120")])
    index = SetupIndex.build(_unit_rows(rng, 9, 4), meta, CONFIG)
    rates = index.partition_base_rates()
    np.testing.assert_allclose(rates["PM_HIGH|UP|0-15"], np.array([6, 3, 2]) / 11)
    np.testing.assert_allclose(rates["SMA_90|DOWN|60-120"], np.array([1, 1, 2]) / 4)


def test_build_refuses_sessions_on_or_after_as_of():
    rng = np.random.default_rng(2)
    with pytest.raises(ValueError, match="point-in-time"):
        SetupIndex.build(_unit_rows(rng, 3, 4), _meta([0, 1, 2], ["BREAK"] * 3), CONFIG, as_of=date(2024, 1, 3))


def _two_partition_index(rng, as_of=date(2024, 6, 1)):
    meta = pl.concat(
        [_meta(np.arange(60) % 12, rng.choice(OUTCOME_NAMES, 60)), _meta(np.arange(30) % 5, rng.choice(OUTCOME_NAMES, 30), key="EMA_20|DOWN|0-15")]
    )
    return SetupIndex.build(_unit_rows(rng, 90, 6), meta, CONFIG, as_of=as_of, vector_version="v-test")


def test_save_load_round_trip(tmp_path):
    rng = np.random.default_rng(11)
    index = _two_partition_index(rng)
    directory = index.save(tmp_path / "index")
    manifest = json.loads((directory / "manifest.json").read_text())
    assert manifest["as_of"] == "2024-06-01" and manifest["vector_version"] == "v-test"
    assert manifest["partitions"]["PM_HIGH|UP|0-15"]["n_vectors"] == 60
    assert len(manifest["source_session_dates"]) == 12
    loaded = SetupIndex.load(directory, CONFIG)
    assert loaded.as_of == index.as_of and loaded.sessions == index.sessions and loaded.stats == index.stats
    queries = _unit_rows(rng, 7, 6)
    for key in ("PM_HIGH|UP|0-15", "EMA_20|DOWN|0-15"):
        a = index.search(key, queries)
        b = loaded.search(key, queries)
        for fa, fb in zip(a, b):
            assert fa.equals(fb)
        np.testing.assert_array_equal(index.partition_base_rates()[key], loaded.partition_base_rates()[key])


def test_failed_save_leaves_the_previous_index_intact(tmp_path, monkeypatch):
    rng = np.random.default_rng(5)
    old = _two_partition_index(rng)
    directory = old.save(tmp_path / "index")
    new = _two_partition_index(rng, as_of=date(2024, 7, 1))

    calls = []

    def failing_write(index, path):
        calls.append(path)
        if len(calls) == 2:
            raise OSError("disk full")
        return real_write(index, path)

    real_write = setup_index_module.faiss.write_index
    monkeypatch.setattr(setup_index_module.faiss, "write_index", failing_write)
    with pytest.raises(OSError, match="disk full"):
        new.save(directory)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index"]  # no temporary left behind
    assert SetupIndex.load(directory, CONFIG).as_of == date(2024, 6, 1)
    # A successful save replaces it.
    new.save(directory)
    assert SetupIndex.load(directory, CONFIG).as_of == date(2024, 7, 1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index"]


def test_load_names_the_missing_file(tmp_path):
    rng = np.random.default_rng(5)
    directory = _two_partition_index(rng).save(tmp_path / "index")
    manifest = json.loads((directory / "manifest.json").read_text())
    victim = directory / manifest["partitions"]["EMA_20|DOWN|0-15"]["file"]
    victim.unlink()
    with pytest.raises(FileNotFoundError, match=str(victim)):
        SetupIndex.load(directory, CONFIG)
    with pytest.raises(FileNotFoundError, match="manifest.json"):
        SetupIndex.load(tmp_path / "nowhere", CONFIG)


def test_hnsw_partition_reports_recall_and_finds_neighbours():
    rng = np.random.default_rng(9)
    config = replace(CONFIG, approximate_index_min_vectors=100)
    vectors = _unit_rows(rng, 600, 12)
    meta = pl.concat([_meta(np.arange(600), rng.choice(OUTCOME_NAMES, 600)), _meta([0], ["BREAK"], key="OR_HIGH|UP|0-15")])
    vectors = np.vstack([vectors, _unit_rows(rng, 1, 12)])
    index = SetupIndex.build(vectors, meta, config)
    stats = index.stats["PM_HIGH|UP|0-15"]
    assert stats.kind == "hnsw" and stats.n_vectors == 600
    assert 0.0 <= stats.recall <= 1.0 and stats.recall > 0.8
    assert index.stats["OR_HIGH|UP|0-15"].kind == "flat"
    # A stored vector finds itself first.
    ids, sims = index.search_batch("PM_HIGH|UP|0-15", vectors[:20])
    np.testing.assert_array_equal(ids[:, 0], np.arange(20))
    np.testing.assert_allclose(sims[:, 0], 1.0, rtol=1e-5)
