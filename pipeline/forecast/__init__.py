"""Layer 5: sampled futures → ``forecasts`` rows, the baselines and calibration."""
