"""scripts/bench/checkout.py's side-by-side table of the aims: a valid Markdown table (one separator cell per
column, GitHub Flavored Markdown's "delimiter row", https://github.github.com/gfm/#tables-extension-), and the
fastest cold strategy named in each place's own cell, since it can differ between memory and disk."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench"))
import checkout  # noqa: E402


def place(work_dir, clone_wall, archive_wall):
    """One place's results, one round: only the fields the ratios read."""
    def row(wall, sent=1000, rss=10000):
        return [{"wall": wall, "bytes": sent, "rss_kib": rss}]
    return {"work_dir": work_dir, "work_fs": "tmpfs" if work_dir == "/dev/shm" else "ext4", "results": {
        "kiln-clone": row(clone_wall), "kiln-archive": row(archive_wall, sent=800), "curl-tar": row(archive_wall),
        "runner-depth20": row(2.0, rss=5000), "kiln-fetch-warm": row(0.8), "kiln-fetch-warm-100": row(0.8),
        "git-fetch-warm": row(1.0)}}


def test_the_aims_side_by_side_are_a_table_with_each_places_fastest_strategy():
    lines = checkout.aims_side_by_side([place("/dev/shm", 2.0, 4.0), place("/tmp", 8.0, 2.0)])
    table = [line for line in lines if line.startswith("|")]
    header, separator, rows = table[0], table[1], table[2:]
    columns = header.count("|") - 1
    assert columns == 3
    assert separator == "| --- | ---: | ---: |"
    assert all(row.count("|") - 1 == columns for row in rows)
    fastest = next(row for row in rows if "fastest strategy" in row)
    assert "(clone)" in fastest.split("|")[2] and "(archive)" in fastest.split("|")[3]
    assert "fastest strategy (" not in fastest.split("|")[1]
