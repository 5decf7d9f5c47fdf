"""Layer 1: CAMEO and FIPS lookup tables (``resources/``), event phrases and the label space."""
