"""lc-report: the results of finished sweeps as a Markdown table beside the paper's numbers, a CSV
of every run and plots in the style of the paper's Figures 4-7."""
