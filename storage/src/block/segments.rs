//! Chunk segment files (`chunks/000001`, ...) and chunk references.
