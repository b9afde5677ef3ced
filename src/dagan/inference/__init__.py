"""The animation pipeline: face crops in, animated frames out, pasted back into the photo."""
