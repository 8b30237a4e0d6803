"""Facts every layer shares: dtypes, checks, memory ranges, the family declaration and the policy pipeline."""
