"""The asset graph, one module per tier."""
