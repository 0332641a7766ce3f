"""The bottom layer: errors, atomic files, weight digests, devices and dtypes, progress bars; imports nothing of the package above it."""
