"""What the benchmarks share: a scratch database and its data (`database`), the report's
section of docs/PERFORMANCE.md (`docs`), CPU accounting per process (`cpu`), percentiles
(`stats`), progress lines (`log`), and the file-delivery servers (`servers`). A bench script
puts `bench/` on `sys.path` (running it as `python bench/x.py` does) and imports from here."""
