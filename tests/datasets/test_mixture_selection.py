"""Dataset selection: ids, id files, curated list, local roots, HF_LEROBOT_HOME; config validation."""

import json

import pytest

from depi.datasets.mixture.config import DatasetConfig
from depi.datasets.mixture.selection import CURATED_LIST, curated_repo_ids, read_repo_ids, select_datasets


def fake_dataset(path):
    (path / "meta").mkdir(parents=True)
    (path / "meta/info.json").write_text("{}")
    return path


def test_root_is_a_dataset_or_a_folder_of_datasets(tmp_path):
    one = fake_dataset(tmp_path / "single")
    assert [(r.repo_id, r.root) for r in select_datasets(root=one)] == [("local/single", one)]
    fake_dataset(tmp_path / "many/owner_a/x")
    fake_dataset(tmp_path / "many/owner_b/y")
    fake_dataset(tmp_path / "many/flat")
    refs = select_datasets(root=tmp_path / "many")
    assert [r.repo_id for r in refs] == ["local/flat", "owner_a/x", "owner_b/y"]
    with pytest.raises(ValueError, match="No LeRobot dataset"):
        select_datasets(root=tmp_path / "many/owner_a/x/meta")


def test_ids_file_under_root_and_missing_ids_recorded(tmp_path):
    fake_dataset(tmp_path / "hub/a/x")
    ids = tmp_path / "ids.json"
    ids.write_text(json.dumps(["a/x", "b/missing", "a/x"]))
    refs = select_datasets(repo_ids=ids, root=tmp_path / "hub")
    assert [r.repo_id for r in refs] == ["a/x", "b/missing"]
    assert refs[0].root == tmp_path / "hub/a/x" and refs[1].root is None
    assert "b/missing" in refs[1].missing_reason


def test_single_id_with_its_own_root(tmp_path):
    root = fake_dataset(tmp_path / "somewhere")
    assert select_datasets(repo_id="me/data", root=root)[0].root == root


def test_ids_resolve_from_hf_lerobot_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_LEROBOT_HOME", str(tmp_path / "home"))
    fake_dataset(tmp_path / "home/a/x")
    refs = select_datasets(repo_id="a/x")
    assert refs[0].root == tmp_path / "home/a/x"
    missing = select_datasets(repo_id="a/y")[0]
    assert missing.root is None and "not found" in missing.missing_reason


def test_curated_list_first_n():
    ids = curated_repo_ids(3)
    assert len(ids) == 3 and all(i.count("/") == 1 for i in ids)
    assert ids == read_repo_ids(CURATED_LIST)[:3]
    with pytest.raises(ValueError, match="pick 1.."):
        curated_repo_ids(10**6)


def test_bad_inputs_are_named(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(["no-slash"]))
    with pytest.raises(ValueError, match="bad.json.*'owner/name'"):
        read_repo_ids(bad)
    with pytest.raises(ValueError, match="No dataset selected"):
        select_datasets()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        select_datasets(repo_id="a/b", root=tmp_path / "nope")


def test_config_validates_itself():
    with pytest.raises(ValueError, match="weighting='nope'"):
        DatasetConfig(weighting="nope")
    with pytest.raises(ValueError, match="weights_file"):
        DatasetConfig(weighting="file")
    with pytest.raises(ValueError, match="action_horizon"):
        DatasetConfig(action_horizon=0)
