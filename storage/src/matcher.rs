//! Label matchers (`=`, `!=`, `=~`, `!~`) with fully anchored regular expressions.
