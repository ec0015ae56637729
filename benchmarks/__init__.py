"""chainml's benchmarks.

``python -m benchmarks NAME [--quick]`` runs one; ``python -m benchmarks all`` runs them
all in full.  Each prints progress to stderr and, as the last line of stdout, one JSON
object holding what it measured, the baseline it names and the ratios against that
baseline, all measured in the same run.
"""
