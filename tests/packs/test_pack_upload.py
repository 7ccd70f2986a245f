"""A pack's files as uploaded: their number, sizes and paths are checked before anything is
parsed; reading a folder takes regular files only (no link, no fifo or socket)."""

from __future__ import annotations

import os
import socket
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from attune.packs import DEFAULT_LIMITS, PackError, PackLimits, check_upload, load_pack_files, read_pack_files
from tests.packs.packtools import ECHO_YAML, PACK_YAML, MakePack

TINY = PackLimits(
    max_bytes=100, max_files=3, max_file_bytes=40, max_path_length=12, max_name_length=255, yaml=DEFAULT_LIMITS.yaml
)


def lines(files: list[tuple[str, bytes]], limits: PackLimits = TINY) -> list[str]:
    return [str(p) for p in check_upload(files, limits)]


def test_file_count_at_the_limit_and_over() -> None:
    assert lines([("a", b""), ("b", b""), ("c", b"")]) == []
    assert lines([("a", b""), ("b", b""), ("c", b""), ("d", b"")]) == [
        "the pack: 4 files, over the limit of 3 files per pack (ATTUNE_MAX_PACK_FILES)"
    ]


def test_total_size_counts_paths_and_contents() -> None:
    assert lines([("a", b"x" * 39), ("b", b"x" * 39), ("c", b"x" * 19)]) == []  # 3 + 97 bytes
    assert lines([("a", b"x" * 39), ("b", b"x" * 39), ("c", b"x" * 20)]) == [
        "the pack: 101 bytes of files and paths, over the limit of 100 (ATTUNE_MAX_PACK_BYTES)"
    ]


def test_file_size_at_the_limit_and_over() -> None:
    assert lines([("a", b"x" * 40)]) == []
    assert lines([("a", b"x" * 41)]) == [
        "a: 41 bytes, over the limit of 40 bytes per file (ATTUNE_MAX_PACK_FILE_BYTES)"
    ]


def test_path_length_at_the_limit_and_over() -> None:
    assert lines([("actions/a.sh", b"")]) == []
    assert lines([("actions/ab.sh", b"")]) == [
        "actions/ab.sh: 13 characters, over the limit of 12 for a path (ATTUNE_MAX_PACK_PATH_LENGTH)"
    ]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("", "(empty): a file without a path"),
        ("/etc/passwd", "/etc/passwd: an absolute path"),
        ("../../x", "../../x: has a .. segment, which would leave the pack"),
        ("actions/../../x", "actions/../../x: has a .. segment"),
        ("a\\..\\b", "a\\..\\b: contains a backslash"),
        ("a\0b", "a\\x00b: contains a NUL character"),
        ("a\x1b[2Jb", "a\\x1b[2Jb: contains a control character"),
        ("a//b", "a//b: has an empty or . segment"),
        ("a/", "a/: has an empty or . segment"),
        ("./a", "./a: has an empty or . segment"),
        ("a/./b", "a/./b: has an empty or . segment"),
        ("a\udcff", "is not UTF-8 text"),
    ],
)
def test_paths_must_stay_inside_the_pack(path: str, expected: str) -> None:
    found = lines([(path, b"")], DEFAULT_LIMITS)
    assert len(found) == 1 and expected in found[0], found


def test_a_path_twice_and_a_path_both_file_and_folder() -> None:
    found = lines([("a", b""), ("a", b"")], DEFAULT_LIMITS)
    assert found == ["a: sent twice; each path names one file"]
    found = lines([("lib", b""), ("lib/x.sh", b"")], DEFAULT_LIMITS)
    assert found == ["lib: is both a file and a folder of the pack"]


def test_a_long_path_is_shown_cut() -> None:
    (message,) = lines([("x" * 300, b"")], DEFAULT_LIMITS)
    assert message.startswith("x" * 80 + "… (300 characters): 300 characters, over the limit of 255")


def test_load_pack_files_checks_the_upload_before_parsing() -> None:
    files = {"pack.yaml": b"{not yaml", "../escape.sh": b""}
    with pytest.raises(PackError) as caught:
        load_pack_files(files)
    assert [p.file for p in caught.value.problems] == ["../escape.sh"]  # pack.yaml was not parsed


def test_symlinks_are_refused_whether_they_leave_the_pack_or_not(make_pack: MakePack) -> None:
    root = make_pack({})
    (root / "actions" / "leak.sh").symlink_to("/etc/hostname")
    (root / "actions" / "same.sh").symlink_to("hello.sh")
    (root / "etc").symlink_to("/etc", target_is_directory=True)
    with pytest.raises(PackError) as caught:
        read_pack_files(root)
    assert sorted(str(p) for p in caught.value.problems) == [
        "actions/leak.sh: is a symbolic link (to /etc/hostname); a pack holds regular files only, so copy the file in",
        "actions/same.sh: is a symbolic link (to hello.sh); a pack holds regular files only, so copy the file in",
        "etc: is a symbolic link (to /etc); a pack holds regular files only, so copy the file in",
    ]


def test_hidden_and_cached_links_are_skipped(make_pack: MakePack) -> None:
    root = make_pack({})
    (root / "node_modules" / ".bin").mkdir(parents=True)
    (root / "node_modules" / ".bin" / "tool").symlink_to("/etc/hostname")
    (root / ".venv").symlink_to("/etc")
    assert set(read_pack_files(root)) == {"pack.yaml", "actions/hello.yaml", "actions/hello.sh"}


def test_a_fifo_is_refused_without_blocking(make_pack: MakePack) -> None:
    root = make_pack({})
    os.mkfifo(root / "actions" / "pipe")
    outcome: list[BaseException | dict[str, bytes]] = []
    reader = threading.Thread(target=lambda: outcome.append(_read_or_error(root)), daemon=True)
    reader.start()
    reader.join(5)
    assert outcome, "reading a pack with a fifo blocked"
    assert isinstance(outcome[0], PackError)
    assert str(outcome[0]) == "actions/pipe: is a fifo, not a regular file; a pack holds regular files only"


def test_a_socket_is_refused(make_pack: MakePack, tmp_path: Path) -> None:
    root = make_pack({})
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(root / "actions" / "sock"))
        with pytest.raises(PackError, match="actions/sock: is a socket, not a regular file"):
            read_pack_files(root)


def test_a_file_name_that_is_not_utf8_is_refused(make_pack: MakePack) -> None:
    root = make_pack({})
    (Path(os.fsdecode(bytes(root) + b"/actions/bad\xff.sh"))).write_text("echo\n")
    with pytest.raises(PackError, match=r"actions/bad\\xff.sh: the file name is not UTF-8"):
        read_pack_files(root)


def test_reading_stops_at_the_limits(make_pack: MakePack) -> None:
    root = make_pack({f"d/{i}": "" for i in range(10)})
    with pytest.raises(PackError) as caught:
        read_pack_files(root, TINY)
    assert (
        str(caught.value) == "the pack: more than 3 files, over the limit of 3 files per pack (ATTUNE_MAX_PACK_FILES)"
    )
    big = make_pack({"actions/big.sh": "x" * 301})
    limits = replace(DEFAULT_LIMITS, max_file_bytes=300)
    with pytest.raises(PackError) as caught:
        read_pack_files(big, limits)
    assert (
        str(caught.value)
        == "actions/big.sh: 301 bytes, over the limit of 300 bytes per file (ATTUNE_MAX_PACK_FILE_BYTES)"
    )


def test_a_folder_of_regular_files_reads_as_before(make_pack: MakePack) -> None:
    root = make_pack({"actions/lib/util.sh": "true\n", "workflows/x.pyc": b"\0"})
    files = read_pack_files(root)
    assert list(files) == sorted(files)
    assert files == {
        "actions/hello.sh": b'printf "hello %s\\n" "$ATTUNE_PARAM_WHO"\n',
        "actions/hello.yaml": ECHO_YAML.encode(),
        "actions/lib/util.sh": b"true\n",
        "pack.yaml": PACK_YAML.encode(),
    }


def _read_or_error(root: Path) -> BaseException | dict[str, bytes]:
    try:
        return read_pack_files(root)
    except BaseException as err:  # handed to the test thread
        return err
