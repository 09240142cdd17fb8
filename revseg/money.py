"""Currency facts the config and the conversion share (no Spark here)."""

from __future__ import annotations

from collections.abc import Mapping

# ISO 4217 currencies whose minor unit is not two decimal places (all others have two).
_ZERO_DECIMALS = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF"
_THREE_DECIMALS = "BHD IQD JOD KWD LYD OMR TND"
_FOUR_DECIMALS = "CLF UYW"
MINOR_UNITS: Mapping[str, int] = {
    **dict.fromkeys(_ZERO_DECIMALS.split(), 0),
    **dict.fromkeys(_THREE_DECIMALS.split(), 3),
    **dict.fromkeys(_FOUR_DECIMALS.split(), 4),
}


def minor_unit(currency: str) -> int:
    """Decimal places of the currency's smallest unit: JPY 0, USD 2, KWD 3."""
    return MINOR_UNITS.get(currency.strip().upper(), 2)


def currencies_by_minor_unit() -> dict[int, list[str]]:
    """The currencies whose minor unit is not 2, by their number of decimals."""
    found: dict[int, list[str]] = {}
    for code, unit in sorted(MINOR_UNITS.items()):
        found.setdefault(unit, []).append(code)
    return found
