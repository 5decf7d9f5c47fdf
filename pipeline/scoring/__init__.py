"""Layer 6: scores against what happened, summaries with intervals, and the HTML report."""
