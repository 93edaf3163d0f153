//! Prometheus' streamed remote read answer (`STREAMED_XOR_CHUNKS`): a sequence of frames, each
//! a uvarint length, a big-endian CRC32 Castagnoli of the message, then one
//! `ChunkedReadResponse` message (Prometheus' storage/remote/chunked.go).

use super::prometheus::PromError;
use bytes::{Buf, Bytes, BytesMut};
use prost::Message as _;
use proto::prometheus as prompb;

/// Content type of a streamed chunked answer.
pub const STREAMED_CONTENT_TYPE: &str =
    "application/x-streamed-protobuf; proto=prometheus.ChunkedReadResponse";

/// Largest frame accepted (Prometheus' `DefaultChunkedReadLimit`, 50 MiB).
pub const FRAME_LIMIT: u64 = 50 << 20;

/// A malformed stream.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    /// The length prefix is not a valid uvarint.
    #[error("frame length is not a valid varint")]
    BadLength,
    /// A frame is larger than the limit.
    #[error("frame of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The announced size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The checksum does not match the data.
    #[error("frame checksum mismatch (want {want:#010x}, got {got:#010x})")]
    Checksum {
        /// The checksum in the frame.
        want: u32,
        /// The checksum of the data received.
        got: u32,
    },
    /// The stream ended inside a frame.
    #[error("stream ended inside a frame ({0} bytes left over)")]
    Truncated(usize),
    /// The message does not decode.
    #[error("frame is not a ChunkedReadResponse: {0}")]
    Decode(String),
}

/// Reads a uvarint from the start of `buf`: `Ok(None)` if more bytes are needed.
fn uvarint(buf: &[u8]) -> Result<Option<(u64, usize)>, FrameError> {
    let mut v: u64 = 0;
    for (i, &b) in buf.iter().enumerate() {
        if i >= 10 {
            return Err(FrameError::BadLength);
        }
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(Some((v, i + 1)));
        }
    }
    if buf.len() >= 10 {
        return Err(FrameError::BadLength);
    }
    Ok(None)
}

/// Takes one whole frame's message bytes off the front of `buf` (checksum verified);
/// `Ok(None)` while the frame is incomplete.
pub fn take_frame(buf: &mut BytesMut, limit: u64) -> Result<Option<Bytes>, FrameError> {
    let Some((size, n)) = uvarint(buf)? else {
        return Ok(None);
    };
    if size > limit {
        return Err(FrameError::TooLarge { size, limit });
    }
    let size = size as usize;
    if buf.len() < n + 4 + size {
        return Ok(None);
    }
    buf.advance(n);
    let want = buf.get_u32();
    let data = buf.split_to(size).freeze();
    let got = crc32c::crc32c(&data);
    if want != got {
        return Err(FrameError::Checksum { want, got });
    }
    Ok(Some(data))
}

/// The frames of one remote read answer, read as they arrive.
#[derive(Debug)]
pub struct FrameReader {
    url: String,
    resp: reqwest::Response,
    buf: BytesMut,
    done: bool,
}

impl FrameReader {
    /// A reader over `resp`, the answer to a request to `url`.
    pub fn new(url: String, resp: reqwest::Response) -> Self {
        FrameReader {
            url,
            resp,
            buf: BytesMut::new(),
            done: false,
        }
    }

    fn frame_err(&self, source: FrameError) -> PromError {
        PromError::Frame {
            url: self.url.clone(),
            source,
        }
    }

    /// The next message; `None` at the end of the answer.
    pub async fn next(&mut self) -> Result<Option<prompb::ChunkedReadResponse>, PromError> {
        loop {
            match take_frame(&mut self.buf, FRAME_LIMIT) {
                Ok(Some(data)) => {
                    return prompb::ChunkedReadResponse::decode(data)
                        .map(Some)
                        .map_err(|e| self.frame_err(FrameError::Decode(e.to_string())));
                }
                Ok(None) => {}
                Err(e) => return Err(self.frame_err(e)),
            }
            if self.done {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                return Err(self.frame_err(FrameError::Truncated(self.buf.len())));
            }
            match self.resp.chunk().await {
                Ok(Some(c)) => self.buf.extend_from_slice(&c),
                Ok(None) => self.done = true,
                Err(source) => {
                    return Err(PromError::Unreachable {
                        url: self.url.clone(),
                        source,
                    })
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Encodes one frame as Prometheus does.
    fn encode_frame(msg: &prompb::ChunkedReadResponse) -> Vec<u8> {
        let data = msg.encode_to_vec();
        let mut out = Vec::new();
        let mut size = data.len() as u64;
        loop {
            let b = (size & 0x7f) as u8;
            size >>= 7;
            if size == 0 {
                out.push(b);
                break;
            }
            out.push(b | 0x80);
        }
        out.extend_from_slice(&crc32c::crc32c(&data).to_be_bytes());
        out.extend_from_slice(&data);
        out
    }

    fn msg(name: &str) -> prompb::ChunkedReadResponse {
        prompb::ChunkedReadResponse {
            chunked_series: vec![prompb::ChunkedSeries {
                labels: vec![prompb::Label {
                    name: "__name__".into(),
                    value: name.into(),
                }],
                chunks: vec![prompb::Chunk {
                    min_time_ms: 1,
                    max_time_ms: 2,
                    r#type: prompb::chunk::Encoding::Xor as i32,
                    data: vec![0, 1, 2, 3],
                }],
            }],
            query_index: 0,
        }
    }

    #[test]
    fn frames_decode_one_by_one_even_when_split_anywhere() {
        let mut stream = encode_frame(&msg("a"));
        stream.extend(encode_frame(&msg("b")));
        for cut in 0..stream.len() {
            let mut buf = BytesMut::from(&stream[..cut]);
            let mut got = Vec::new();
            while let Some(f) = take_frame(&mut buf, FRAME_LIMIT).unwrap() {
                got.push(f);
            }
            buf.extend_from_slice(&stream[cut..]);
            while let Some(f) = take_frame(&mut buf, FRAME_LIMIT).unwrap() {
                got.push(f);
            }
            assert_eq!(got.len(), 2, "cut at {cut}");
            let b = prompb::ChunkedReadResponse::decode(got[1].clone()).unwrap();
            assert_eq!(b, msg("b"));
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn corrupt_and_oversized_frames_are_errors() {
        let mut f = encode_frame(&msg("a"));
        let last = f.len() - 1;
        f[last] ^= 0xff;
        let mut buf = BytesMut::from(&f[..]);
        assert!(matches!(
            take_frame(&mut buf, FRAME_LIMIT),
            Err(FrameError::Checksum { .. })
        ));
        let mut buf = BytesMut::from(&encode_frame(&msg("a"))[..]);
        assert!(matches!(
            take_frame(&mut buf, 3),
            Err(FrameError::TooLarge { .. })
        ));
        let mut buf = BytesMut::from(&[0xffu8; 11][..]);
        assert_eq!(
            take_frame(&mut buf, FRAME_LIMIT),
            Err(FrameError::BadLength)
        );
    }
}
