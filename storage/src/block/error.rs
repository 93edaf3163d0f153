//! Errors of block reading and writing, each naming the block and the file.

use crate::encoding::DecodeError;

/// What went wrong with a block, naming the block, the file and where it applies the offset.
#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    /// The file's bytes do not follow the format.
    #[error("block {block}: {file}: corrupt{}: {reason}", offset_suffix(.offset))]
    Corrupt {
        /// Block ULID (or directory name).
        block: String,
        /// File inside the block, such as `index` or `chunks/000001`.
        file: String,
        /// Absolute byte offset in the file, where it applies.
        offset: Option<u64>,
        /// What was wrong.
        reason: String,
    },
    /// A file the block needs is absent.
    #[error("block {block}: {file}: missing")]
    Missing {
        /// Block ULID.
        block: String,
        /// Missing file.
        file: String,
    },
    /// The file uses a format version or encoding Strata does not read.
    #[error("block {block}: {file}: unsupported: {reason}")]
    Unsupported {
        /// Block ULID.
        block: String,
        /// File inside the block.
        file: String,
        /// What is unsupported.
        reason: String,
    },
    /// Reading or writing the file failed (disk or bucket).
    #[error("block {block}: {file}: {source}")]
    Io {
        /// Block ULID.
        block: String,
        /// File inside the block.
        file: String,
        /// The underlying failure.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The caller asked for something the block writer cannot do (unsorted input, ...).
    #[error("block {block}: invalid input: {reason}")]
    InvalidInput {
        /// Block ULID being written.
        block: String,
        /// What was wrong with the input.
        reason: String,
    },
}

fn offset_suffix(offset: &Option<u64>) -> String {
    match offset {
        Some(o) => format!(" at offset {o}"),
        None => String::new(),
    }
}

/// The block and file an error belongs to; readers carry one to build errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileLocation {
    /// Block ULID (or directory name).
    pub block: String,
    /// File inside the block.
    pub file: String,
}

impl FileLocation {
    /// A location from a block id and a file name.
    pub fn new(block: impl Into<String>, file: impl Into<String>) -> Self {
        FileLocation {
            block: block.into(),
            file: file.into(),
        }
    }

    /// A corruption error at `offset`.
    pub fn corrupt_at(&self, offset: u64, reason: impl Into<String>) -> BlockError {
        BlockError::Corrupt {
            block: self.block.clone(),
            file: self.file.clone(),
            offset: Some(offset),
            reason: reason.into(),
        }
    }

    /// A corruption error without an offset.
    pub fn corrupt(&self, reason: impl Into<String>) -> BlockError {
        BlockError::Corrupt {
            block: self.block.clone(),
            file: self.file.clone(),
            offset: None,
            reason: reason.into(),
        }
    }

    /// A decode error turned into a corruption error of this file.
    pub fn decode(&self, e: DecodeError) -> BlockError {
        self.corrupt_at(e.offset, e.reason)
    }

    /// An unsupported-format error.
    pub fn unsupported(&self, reason: impl Into<String>) -> BlockError {
        BlockError::Unsupported {
            block: self.block.clone(),
            file: self.file.clone(),
            reason: reason.into(),
        }
    }

    /// A missing-file error.
    pub fn missing(&self) -> BlockError {
        BlockError::Missing {
            block: self.block.clone(),
            file: self.file.clone(),
        }
    }

    /// An I/O error.
    pub fn io(&self, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> BlockError {
        BlockError::Io {
            block: self.block.clone(),
            file: self.file.clone(),
            source: source.into(),
        }
    }
}

impl BlockError {
    /// True when the block's data is damaged (as opposed to unreadable right now).
    pub fn is_corrupt(&self) -> bool {
        matches!(
            self,
            BlockError::Corrupt { .. } | BlockError::Missing { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corrupt_error_names_block_file_and_offset() {
        let loc = FileLocation::new("01ABC", "index");
        let msg = loc.corrupt_at(1234, "bad CRC").to_string();
        assert_eq!(msg, "block 01ABC: index: corrupt at offset 1234: bad CRC");
    }
}
