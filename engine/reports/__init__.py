"""What is made from stored runs, one module per thing: runs (frames, like-with-like latency
rows, paired speedups, the frontier), stats (bootstrap, McNemar, flips), compare (runs side by
side), lineage (a run's chain), diagnosis (why a run is not faster), figures (every chart),
files (CSV, archive, recipe YAML) and report (the offline HTML report). No torch, no streamlit."""
