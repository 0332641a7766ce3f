"""Shipping an edit: saving a detoxified model atomically, and patch files that put an edit on and take it off
bit-exactly."""
