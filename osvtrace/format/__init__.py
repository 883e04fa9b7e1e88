"""The .osvt trace file: writer, reader, decoder (and, next, other kernels' trace dumps)."""
