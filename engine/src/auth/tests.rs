//! Tests of the whole auth layer against the shared vectors.
