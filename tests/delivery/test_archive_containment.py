"""The local archive is never written outside its root: the registry refuses a folder that climbs
out however it is spelt (``..\\..\\x`` is ``../../x`` once backslashes are separators), and the
archive channel resolves the target when it writes and refuses one outside the root even when it
is handed such a folder (or a folder that is a symlink out of the root)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.factories import ROOT, WEEK_OF

PDF = b"%PDF-1.7 approved bytes"


@pytest.fixture
def raw():
    return yaml.safe_load((ROOT / "include" / "customers.yaml").read_text())


@pytest.mark.parametrize("folder", ["..\\..\\x", "Acme\\..\\..\\x", "Acme/..\\..\\x", ".\\..\\x", "Acme\\..",
                                    "\\\\server\\share\\x", "C:\\archive", "C:x", " ..\\x "])
def test_the_registry_refuses_a_folder_that_climbs_out_however_it_is_spelt(raw, folder):
    from msp_reports.exceptions import RegistryError
    from msp_reports.registry import parse_registry

    raw["customers"][0]["delivery"]["archive"] = {"via": "local", "folder": folder}
    with pytest.raises(RegistryError, match=r"reg\.yaml: customer 'ACME': delivery\.archive\.folder: .*"
                                            r"relative folder name without '\.\.'"):
        parse_registry(raw, "reg.yaml")


def test_the_registry_keeps_one_spelling_of_a_backslashed_folder(raw):
    from msp_reports.registry import parse_registry

    raw["customers"][0]["delivery"]["archive"] = {"via": "local", "folder": ".\\Acme\\Reports\\"}
    assert parse_registry(raw, "reg.yaml").get("ACME").delivery.archive.folder == "Acme/Reports"


def _files_under(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file())


@pytest.mark.parametrize("folder", ["../../x", "Acme/../../x", "..\\..\\x", "/tmp/elsewhere"])
def test_the_archive_channel_refuses_to_write_outside_its_root(tmp_path, folder):
    from msp_reports.delivery.archive import LocalArchiveChannel, archive_name
    from msp_reports.exceptions import ArchiveOutsideRoot

    root = tmp_path / "a" / "b" / "archive"
    root.mkdir(parents=True)
    channel = LocalArchiveChannel(root, folder, archive_name("ACME", WEEK_OF), PDF, b"{}")
    with pytest.raises(ArchiveOutsideRoot, match="ACME_weekly-report_2026-11-16.pdf: the archive folder .* outside "
                                                 "the archive root"):
        channel.send("key")
    with pytest.raises(ArchiveOutsideRoot):
        channel.lookup("key")
    assert _files_under(tmp_path) == []


def test_a_folder_that_is_a_symlink_out_of_the_root_is_refused(tmp_path):
    from msp_reports.delivery.archive import LocalArchiveChannel, archive_name
    from msp_reports.exceptions import ArchiveOutsideRoot

    root, outside = tmp_path / "archive", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "Acme").symlink_to(outside, target_is_directory=True)
    channel = LocalArchiveChannel(root, "Acme/Reports", archive_name("ACME", WEEK_OF), PDF, b"{}")
    with pytest.raises(ArchiveOutsideRoot):
        channel.send("key")
    assert _files_under(outside) == []


def test_a_folder_inside_the_root_is_written_there(tmp_path):
    from msp_reports.delivery.archive import LocalArchiveChannel, archive_name

    root = tmp_path / "archive"
    channel = LocalArchiveChannel(root, "Acme/Reports", archive_name("ACME", WEEK_OF), PDF, b"{}")
    receipt = channel.send("key")
    target = root / "Acme" / "Reports" / "ACME_weekly-report_2026-11-16.pdf"
    assert receipt["remote_id"] == str(target.resolve())
    assert _files_under(tmp_path) == [target, target.with_name("ACME_weekly-report_2026-11-16.snapshot.json")]
    assert target.read_bytes() == PDF
    assert channel.lookup("key") is not None


def test_the_archive_task_refuses_and_records_a_failure_naming_the_folder(make_case, tmp_path):
    """Through the ledger: a folder that escapes (here a symlink planted in the archive) is a plain
    failure with the reason, and nothing is written outside the root."""
    case = make_case({"teams": {"via": "workflow", "conn_id": "teams_acme"},
                      "archive": {"via": "local", "folder": "Acme/Reports"}})
    outside = tmp_path / "outside"
    outside.mkdir()
    Path(case.settings.archive_root).mkdir(parents=True)
    (Path(case.settings.archive_root) / "Acme").symlink_to(outside, target_is_directory=True)
    from msp_reports.exceptions import ArchiveOutsideRoot

    with pytest.raises(ArchiveOutsideRoot):
        case.deliver("archive")
    receipt = case.receipt("archive")
    assert receipt["state"] == "failed" and "outside the archive root" in receipt["error"]
    assert _files_under(outside) == []
