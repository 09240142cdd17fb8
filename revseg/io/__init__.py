"""Everything that touches storage: the transaction source and the Delta tables."""
