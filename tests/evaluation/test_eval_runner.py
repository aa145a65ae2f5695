"""Running evaluations: where uploaded datasets are written."""

from __future__ import annotations

import pytest

from core.eval_runner import UPLOADED, dataset_folders, dataset_slug, save_uploaded_dataset


@pytest.mark.parametrize(
    "name", ["..", ".", "../../outside", "a/b\\c", "", "   ", "<b>x</b>", "名前", ".hidden", "x" * 500]
)
def test_an_uploaded_dataset_lands_in_its_own_folder_whatever_its_name(settings, name):
    folder = save_uploaded_dataset(
        settings, name, b'{"_id": "d", "text": "t"}', b'{"_id": "q", "text": "t"}', b"q\td\t1"
    )
    root = (settings.workspace / UPLOADED).resolve()
    assert folder.resolve().parent == root and not folder.name.startswith(".")
    assert (folder / "qrels" / "test.tsv").read_bytes() == b"q\td\t1"
    assert folder in dataset_folders(settings)
    assert sorted(p.name for p in settings.workspace.iterdir()) == [UPLOADED]  # nothing beside it


def test_slugs_keep_readable_names_and_never_collide():
    assert dataset_slug("my-dataset_v2") == "my-dataset_v2"
    assert dataset_slug("scifact (test).v1").startswith("scifact_test_v1-")
    names = ["a b", "a.b", "a_b", "名前", "データ", "", "..", "."]
    assert len({dataset_slug(n) for n in names}) == len(names)
