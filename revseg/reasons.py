"""Reason codes: why a row is not counted (stdlib only: the driver-side checks use them too).

They are a contract: they name rows in the run summary, the run log and quarantine.
"""

from __future__ import annotations

MISSING_TRANSACTION_ID = "missing_transaction_id"
MISSING_CUSTOMER_ID = "missing_customer_id"
MISSING_AMOUNT = "missing_amount"
INVALID_AMOUNT = "invalid_amount"
INVALID_COST = "invalid_cost"
MISSING_TIMESTAMP = "missing_timestamp"
INVALID_TIMESTAMP = "invalid_timestamp"
MISSING_CURRENCY = "missing_currency"
MISSING_FX_RATE = "missing_fx_rate"
STALE_FX_RATE = "stale_fx_rate"
EXCLUDED_TYPE = "excluded_type"
UNKNOWN_TRANSACTION_TYPE = "unknown_transaction_type"
MALFORMED = "malformed"
BEFORE_MIN_DATE = "before_min_date"
AFTER_AS_OF_DATE = "after_as_of_date"
AMOUNT_OUT_OF_RANGE = "amount_out_of_range"
DUPLICATE = "duplicate"

# The reasons a single row is rejected for, in the order the rules are checked.
ROW_REASONS = (
    MALFORMED,
    MISSING_TRANSACTION_ID,
    MISSING_CUSTOMER_ID,
    MISSING_AMOUNT,
    INVALID_AMOUNT,
    INVALID_COST,
    MISSING_TIMESTAMP,
    INVALID_TIMESTAMP,
    MISSING_CURRENCY,
    MISSING_FX_RATE,
    STALE_FX_RATE,
    BEFORE_MIN_DATE,
    AFTER_AS_OF_DATE,
    EXCLUDED_TYPE,
    UNKNOWN_TRANSACTION_TYPE,
    AMOUNT_OUT_OF_RANGE,
)
