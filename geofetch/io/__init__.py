"""Reading place lists and writing results, one module per direction."""
