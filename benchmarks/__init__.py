"""`python -m benchmarks.run`: every lesson against its baseline, side by side in one run (`make bench`)."""
