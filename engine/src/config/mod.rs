//! Configuration: the YAML model, validation and snapshots.
