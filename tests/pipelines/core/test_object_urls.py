"""Object-store URLs: ``gs://`` reaches the GCS emulator named by ``STORAGE_EMULATOR_HOST``
(gcp-storage-emulator on 127.0.0.1), and a staged copy is named by its object's URL."""

from __future__ import annotations

from pathlib import Path

import pyarrow.fs as pafs
import pytest

from pipelines.core.object_urls import filesystem_of, origin_url, source_label, staged_location
from tests.gcs_server import GcsBucket


def test_gs_urls_go_to_the_emulator_with_or_without_a_scheme_in_the_variable(
    gcs: GcsBucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``STORAGE_EMULATOR_HOST`` as Google's clients take it: ``http://host:port`` or
    ``host:port``; the key keeps its spaces and brackets."""
    gcs.put("exports/May export [final].csv", b"a,b\n1,2\n")
    for host in (gcs.endpoint, gcs.endpoint.removeprefix("http://")):
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", host)
        fs, path = filesystem_of(gcs.url("exports/May export [final].csv"))
        assert path == f"{gcs.name}/exports/May export [final].csv"
        with fs.open_input_stream(path) as stream:
            assert stream.read() == b"a,b\n1,2\n"
        assert fs.get_file_info(f"{gcs.name}/missing.csv").type == pafs.FileType.NotFound


def test_a_blank_emulator_variable_names_no_host(monkeypatch: pytest.MonkeyPatch) -> None:
    """``STORAGE_EMULATOR_HOST=http://`` is a ValueError (the callers' 'cannot open' error)."""
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", "http://")
    with pytest.raises(ValueError, match="names no host"):
        filesystem_of("gs://bucket/key.csv")


def test_a_staged_copy_is_named_by_its_url_and_anything_else_as_given(tmp_path: Path) -> None:
    """report.json and ``_dl_source_file`` name an object by its URL; a local file, a relative
    path and a URL stay as they are; the staged location of a URL maps back to it."""
    url = "gs://lms-drops/landing/May export (final).csv"
    assert origin_url(staged_location(url)) == url
    assert source_label(staged_location(url)) == url
    assert source_label(str(staged_location(url))) == url
    assert source_label(url) == url
    assert source_label(tmp_path / "a.csv") == str(tmp_path / "a.csv")
    assert source_label("exports/a.csv") == "exports/a.csv"
