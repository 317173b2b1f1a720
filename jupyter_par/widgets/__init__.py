"""Progress widgets: they draw the progress state they are given and start no work."""
