"""The lake's listings kept during a date-order walk: they follow the walk's own writes and end with it."""

from __future__ import annotations

import polars as pl

from spymaster_resources.lake import Lake


def test_listings_kept_during_a_walk_follow_its_own_writes_and_end_with_it(tmp_path):
    """Inside ``cached_listings`` a table is listed once; partitions written, rewritten, replaced or
    removed through the lake show at once; outside it every listing looks at the disk."""
    import json
    import os
    from datetime import date

    from spymaster_resources.lake import LISTINGS, cached_listings
    from spymaster_resources.lake_paths import remove_tree, replace_directory

    lake = Lake(tmp_path / "lake")
    one, two, three = date(2024, 1, 2), date(2024, 1, 3), date(2024, 1, 4)
    frame = pl.DataFrame({"x": [1, 2]})
    lake.write("gold", "t", one, frame)
    with cached_listings():
        assert lake.dates("gold", "t") == [one]
        before = lake.partition_files("gold", "t")[one]["fingerprint"]
        lake.write("gold", "t", two, frame)
        lake.write("gold", "t", one, pl.DataFrame({"x": [1, 2, 3]}))
        listed = lake.partition_files("gold", "t")
        assert sorted(listed) == [one, two] and listed[one]["fingerprint"] != before
        replace_directory(lake.partition_dir("gold", "m", three), lambda root: (root / "meta.json").write_text(json.dumps({})))
        assert lake.dates("gold", "m", marker="meta.json") == [three]
        remove_tree(lake.partition_dir("gold", "t", two))
        remove_tree(lake.partition_dir("gold", "m", three))
        assert lake.dates("gold", "t") == [one] and lake.dates("gold", "m", marker="meta.json") == []
        # A write that does not go through the lake is not seen while the walk runs (the contract)...
        os.makedirs(lake.partition_dir("gold", "t", three))
        lake.partition_path("gold", "t", three).write_bytes(lake.partition_path("gold", "t", one).read_bytes())
        assert lake.dates("gold", "t") == [one]
    # ... and is seen once it ends: nothing is kept outside a walk.
    assert not LISTINGS.active and lake.dates("gold", "t") == [one, three]


def test_a_failed_atomic_write_keeps_the_old_file_and_leaves_no_staging_file(tmp_path):
    """``write_file_atomic``, the one write-then-rename of the lake, its caches and raw/'s inventory."""
    import pytest

    from spymaster_resources.lake_paths import write_file_atomic, write_text_atomic

    target = tmp_path / "kept.json"
    write_text_atomic(target, "old")

    def fail(staged):
        staged.write_text("half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        write_file_atomic(target, fail)
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["kept.json"]
