"""lc-lightning: training CNNs with linear combinations of (frozen) random convolution filters."""
