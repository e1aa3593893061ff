"""Dataset versions on real data: create, list, diff by source and by cluster, pair ids for export."""

from __future__ import annotations

import pytest

import storage
from storage import versions as version_rows
from tests.conftest import DATA, needs_data, query
from tests.curation_data import CODE, IDENTITY, copy_to, mapped_template

pytestmark = [needs_data, pytest.mark.slow]  # its one test needs the session's mapped database (~40 s)


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    if not DATA.exists():
        pytest.skip("needs ../shared/data")
    return mapped_template(tmp_path_factory)


def test_versions_create_list_diff(template, db, curator):
    copy_to(template, db)
    total = query(db, "SELECT count(*) FROM pairs")[0][0]
    made = curator("version", "create", "v1.0", "--note", "everything").output
    assert f"version v1.0: {total:,} pairs (no operations yet)" in made
    curator("delete", "--source", IDENTITY, "--reason", "identity questions")
    curator("version", "create", "v1.1")
    clusters = [
        c for c in curator.json("clusters") if c["level"] == "fine" and c["id"] != -1 and CODE in c["top_sources"]
    ]
    blob = max(clusters, key=lambda c: c["size"])
    curator("delete", "--cluster", blob["id"])
    curator("version", "create", "v1.2", "--note", "without the biggest code blob")
    curator("restore", "--source", IDENTITY)  # versions are snapshots: later operations do not move them
    curator("version", "create", "v1.3")

    listed = curator.json("version", "list")
    assert [(v["name"], v["pairs"], v["op_id"], v["note"]) for v in listed] == [
        ("v1.0", total, None, "everything"),
        ("v1.1", total - 500, 1, None),
        ("v1.2", total - 500 - blob["size"], 2, "without the biggest code blob"),
        ("v1.3", total - blob["size"], 3, None),
    ]

    diff = curator.json("version", "diff", "v1.0", "v1.1")
    assert (diff["pairs_from"], diff["pairs_to"], diff["added"], diff["removed"]) == (total, total - 500, 0, 500)
    assert {s["source"]: (s["a"], s["b"], s["added"], s["removed"]) for s in diff["by_source"]} == {
        IDENTITY: (500, 0, 0, 500),
        CODE: (total - 500, total - 500, 0, 0),
    }
    assert diff["map"] == "prompt"
    assert sum(c["removed"] for c in diff["by_cluster"]) == 500
    assert all(c["added"] == 0 for c in diff["by_cluster"])

    blob_diff = curator.json("version", "diff", "v1.1", "v1.2")
    assert [(c["cluster"], c["topic"], c["removed"], c["added"]) for c in blob_diff["by_cluster"]] == [
        (blob["id"], blob["label"], blob["size"], 0)
    ]
    back = curator.json("version", "diff", "v1.2", "v1.3")
    assert (back["added"], back["removed"]) == (500, 0)

    text = curator("version", "diff", "v1.0", "v1.2").output
    assert "v1.0 -> v1.2" in text and f"-{500 + blob['size']:,} removed" in text and IDENTITY in text

    con = storage.connect_read_only(db)
    try:
        ids = version_rows.pair_ids(con, "v1.1")
        assert ids.dtype.kind == "i" and len(ids) == total - 500 and (ids[1:] > ids[:-1]).all()
        assert set(ids.tolist()) == {
            r[0] for r in con.execute("SELECT id FROM pairs WHERE source = ?", [CODE]).fetchall()
        }
        with pytest.raises(ValueError, match="no version 'v9'"):
            version_rows.pair_ids(con, "v9")
    finally:
        con.close()
    assert "exists already" in curator("version", "create", "v1.0", ok=False).output
    assert "no version 'nope'" in curator("version", "diff", "v1.0", "nope", ok=False).output
