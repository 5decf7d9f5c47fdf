"""Layer 3: phrase embeddings, daily descriptors (weighted clouds on the sphere) and T-day sequences."""
