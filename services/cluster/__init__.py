"""`bbapi cluster`: every service as its own process on one machine, supervised."""
