"""A calendar month as an integer index (`year * 12 + month - 1`): plain Python, so that
the config, the plans and the driver-side checks use it without Spark."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

_MONTH_TEXT = re.compile(r"^(\d{4})-(\d{2})$")  # years 1000-9000


@dataclass(frozen=True, order=True)
class Month:
    """A calendar month, as an index that orders and subtracts like an integer."""

    index: int

    @classmethod
    def of(cls, year: int, month: int) -> Month:
        return cls(year * 12 + month - 1)

    @classmethod
    def parse(cls, text: str) -> Month:
        """Parse `YYYY-MM`; raises ValueError with the expected form."""
        match = _MONTH_TEXT.match(text.strip())
        if (
            not match
            or not 1 <= int(match.group(2)) <= 12
            or not 1000 <= int(match.group(1)) <= 9000
        ):
            raise ValueError(f"{text!r} is not a month in the form YYYY-MM, e.g. 2024-03")
        return cls.of(int(match.group(1)), int(match.group(2)))

    @classmethod
    def of_date(cls, day: date) -> Month:
        return cls.of(day.year, day.month)

    @property
    def year(self) -> int:
        return self.index // 12

    @property
    def month(self) -> int:
        return self.index % 12 + 1

    def first_day(self) -> date:
        return date(self.year, self.month, 1)

    def last_day(self) -> date:
        following = self + 1
        return date.fromordinal(following.first_day().toordinal() - 1)

    def __add__(self, months: int) -> Month:
        return Month(self.index + months)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"
