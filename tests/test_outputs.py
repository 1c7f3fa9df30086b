"""Output paths are checked before any work: no silent overwrite, no collisions, no writes into inputs."""
import pytest

from maskgit.outputs import check_output_dir, check_writable, result_paths


def test_existing_files_need_overwrite(tmp_path):
    (tmp_path / "a.png").write_text("old")
    with pytest.raises(FileExistsError, match="--overwrite"):
        check_writable([tmp_path / "a.png", tmp_path / "b.png"], overwrite=False)
    check_writable([tmp_path / "a.png"], overwrite=True)
    assert (tmp_path / "a.png").read_text() == "old"  # checking never writes


def test_collisions_directories_and_files_in_the_way_are_refused(tmp_path):
    with pytest.raises(ValueError, match="two outputs"):
        check_writable([tmp_path / "x.png", tmp_path / "." / "x.png"], overwrite=True)
    (tmp_path / "d").mkdir()
    with pytest.raises(IsADirectoryError, match="is a directory"):
        check_writable([tmp_path / "d"], overwrite=True)
    (tmp_path / "f").write_text("")
    with pytest.raises(NotADirectoryError, match="is a file"):
        check_writable([tmp_path / "f" / "deeper" / "x.png"], overwrite=True)
    with pytest.raises(NotADirectoryError, match="give a directory"):
        check_output_dir(tmp_path / "f")
    assert check_output_dir(tmp_path / "new" / "dir") == tmp_path / "new" / "dir"
    assert not (tmp_path / "new").exists()


def test_result_paths_are_a_json_file_outside_the_inputs(tmp_path):
    assert result_paths(tmp_path / "r.json", False) == (tmp_path / "r.json", tmp_path / "r.png")
    with pytest.raises(ValueError, match=".json"):
        result_paths(tmp_path / "r.png", True)  # the JSON would overwrite its own PNG
    (tmp_path / "tok").mkdir()
    with pytest.raises(ValueError, match="inside the input directory"):
        result_paths(tmp_path / "tok" / "tokenizer.json", True, inputs=[tmp_path / "tok"])
