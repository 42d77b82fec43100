"""The virtual studio's renderer (private): portrait analysis, lighting, pose motion, sensor noise.

The public face is :mod:`acquisition.sim`; everything here is re-exported there.
"""
