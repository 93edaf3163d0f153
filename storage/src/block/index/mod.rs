//! The index file, format v2: symbols, series, postings, offset tables and TOC.
