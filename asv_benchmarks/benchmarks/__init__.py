"""asv benchmarks of numadam: one optimizer step, through the public API only."""
