//! Chunk encodings: XOR for floats; histogram chunks are recognised.
