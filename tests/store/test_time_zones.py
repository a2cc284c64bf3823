"""A time zone name is checked one way wherever one comes in: a CSV cell, the import's assumed zone,
the REST API's customer, and the delivery and business-hours settings.

``Asia`` names a folder of the zone database: ``ZoneInfo`` raises IsADirectoryError for it, which
each place used to let through as a crash instead of its own "unknown time zone".
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from console.api_customers import CustomerIn
from engine.language.settings_model import BusinessHours, DeliveryConfig
from store.clock import known_zone
from store.importing import ImportFileError, import_csv
from store.importing.fields import FieldError, timezone

NOT_ZONES = ["Asia", "", "Mars/Base", "../zoneinfo/UTC", "Asia/Shanghai "]


@pytest.mark.parametrize("name", ["Asia/Shanghai", "America/Los_Angeles", "UTC"])
def test_a_zone_of_the_database_is_known(name: str) -> None:
    assert known_zone(name)


@pytest.mark.parametrize("name", NOT_ZONES)
def test_a_folder_an_empty_name_or_a_path_is_no_zone(name: str) -> None:
    assert not known_zone(name)


@pytest.mark.parametrize("name", NOT_ZONES[:-1])  # a cell is stripped: "Asia/Shanghai " is a zone there
def test_a_csv_cell_that_is_no_zone_is_a_field_error(name: str) -> None:
    with pytest.raises(FieldError, match="is not a time zone name"):
        timezone(name)


def test_an_assumed_zone_that_is_no_zone_refuses_the_file(tmp_path: Path) -> None:
    path = tmp_path / "customers.csv"
    path.write_text("external_id,name\nC1,Zhang\n", encoding="utf-8")
    with pytest.raises(ImportFileError, match="unknown time zone 'Asia'"):
        import_csv("customers", path, f"sqlite:///{tmp_path / 'book.db'}", assume_tz="Asia")


@pytest.mark.parametrize(
    "build",
    [
        lambda name: CustomerIn(timezone=name),
        lambda name: BusinessHours(timezone=name),
        lambda name: DeliveryConfig(default_timezone=name),
    ],
    ids=["api-customer", "business-hours", "delivery"],
)
@pytest.mark.parametrize("name", NOT_ZONES)
def test_a_model_refuses_a_name_that_is_no_zone(build: object, name: str) -> None:
    with pytest.raises(ValidationError, match="unknown time zone"):
        build(name)  # type: ignore[operator]
