"""sort and top_k."""
