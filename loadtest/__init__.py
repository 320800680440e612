"""Load-test harness and benchmark scenarios."""
