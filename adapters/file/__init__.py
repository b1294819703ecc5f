"""A sink that writes each delivery to a directory (``type = "file"``)."""
