"""Bytes in and out, safely (no ROS, no torch).

``images`` is the one decoder of encoded images (files, CompressedImage messages), for
formats whose size is read from the header before a pixel is decoded;
``inflate`` inflates compressed data within a bound known before it starts;
``outputs`` is the one writer of the files the package writes for a user:
a temporary created exclusively, then renamed, never through a link or over
a file it may not replace.
"""
