"""Beat: one leader fires each slot of each schedule exactly once, as an ordinary job."""
