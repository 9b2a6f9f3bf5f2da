"""The `tollgate` command line: --help everywhere, load, ingest, exit codes, audit verify."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from app.cli import cli
from app.settings import get_settings

runner = CliRunner()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("TOLLGATE_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("TOLLGATE_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def _all_commands() -> list[list[str]]:
    root = get_command(cli)
    paths: list[list[str]] = [[]]
    for name, command in root.commands.items():  # type: ignore[attr-defined]
        paths.append([name])
        for sub in getattr(command, "commands", {}):
            paths.append([name, sub])
    return paths


@pytest.mark.parametrize("path", _all_commands(), ids=lambda p: " ".join(p) or "tollgate")
def test_every_command_has_help(path: list[str]) -> None:
    result = runner.invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_load_ingest_and_verify(env: Path, demo_dir: Path) -> None:
    loaded = runner.invoke(cli, ["load-master-data", str(demo_dir / "master")])
    assert loaded.exit_code == 0, loaded.output
    assert "suppliers created" in loaded.output

    result = runner.invoke(cli, ["ingest", "--json", str(demo_dir / "documents")])
    # One truncated file in the folder: everything else is read, and the exit code says 2.
    assert result.exit_code == 2
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 29
    unreadable = [r for r in lines if r["outcome"] == "unreadable"]
    assert [r["error_code"] for r in unreadable] == ["MALFORMED_XML"]
    assert unreadable[0]["source"].endswith("999-truncated-upload.xml")
    assert sum(r["outcome"] == "new case" for r in lines) == 28

    again = runner.invoke(
        cli, ["ingest", "--json", str(demo_dir / "documents" / "001-clean-1.xml")]
    )
    assert again.exit_code == 0
    assert json.loads(again.stdout)["outcome"] == "already stored"

    late = runner.invoke(cli, ["load-master-data", str(demo_dir / "late_receipts")])
    assert late.exit_code == 0, late.output
    assert "NO_RECEIPT -> clean" in late.output
    assert re.search(r"receipts created\W+1\b", late.output)

    verified = runner.invoke(cli, ["audit", "verify"])
    assert verified.exit_code == 0, verified.output
    assert "audit chain ok" in verified.output


def test_bad_master_data_is_a_clear_error(env: Path, tmp_path: Path) -> None:
    folder = tmp_path / "md"
    folder.mkdir()
    (folder / "suppliers.csv").write_text("ref,name\n,No ref\n", encoding="utf-8")
    result = runner.invoke(cli, ["load-master-data", str(folder)])
    assert result.exit_code == 2
    assert "MASTER_DATA_INVALID" in result.output
    assert "row 2" in result.output


def test_installed_script_runs() -> None:
    script = Path(sys.executable).with_name("tollgate")
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, check=False)
    assert result.returncode == 0
    assert "load-master-data" in result.stdout


def test_ingest_reads_every_document_of_a_bulk_csv(env: Path, demo_dir: Path) -> None:
    from pipelines.writers.csv_invoices import write_csv
    from training.demo_world import build_world

    documents = [doc for _name, doc, _expect in build_world().documents if doc.number]
    path = env / "batch.csv"
    path.write_bytes(write_csv(documents))
    assert runner.invoke(cli, ["load-master-data", str(demo_dir / "master")]).exit_code == 0
    result = runner.invoke(cli, ["ingest", "--json", str(path)])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == len(documents) > 20
    assert {r["outcome"] for r in lines} == {"new case"}
    assert lines[0]["source"] == f"{path}#{documents[0].kind} {documents[0].number}"
    # The same file again: every part is already stored (content-addressed, per document).
    again = runner.invoke(cli, ["ingest", "--json", str(path)])
    assert {json.loads(x)["outcome"] for x in again.stdout.splitlines()} == {"already stored"}


def test_erp_sync_reports_what_it_pulled(env: Path) -> None:
    # The embedded UBL-export adapter holds no master data: a sync pulls nothing, and says so.
    # (A sync from a real Tryton is tested in tests/integration/test_tryton.py.)
    result = runner.invoke(cli, ["erp", "sync"])
    assert result.exit_code == 0, result.output
    assert "Synced from ubl-export" in result.output
    assert "open cases re-matched" in result.output
