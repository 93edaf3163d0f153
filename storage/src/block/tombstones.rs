//! The tombstones file: deleted time ranges per series.
