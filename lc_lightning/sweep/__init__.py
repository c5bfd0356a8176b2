"""lc-sweep: grids of lc-train runs, run here one after another or as a SLURM job array."""
