//! Long GET URLs. hyper refuses a request target longer than 64 KiB (the `http` crate's URI
//! limit, not configurable) with an empty 414, where Prometheus takes request heads up to
//! 1 MiB (Go's `DefaultMaxHeaderBytes`) and answers. Between the socket and hyper this stream
//! moves the query string of such a GET into the body, marked with [`QUERY_IN_BODY_HEADER`],
//! and `params::read_form` reads it back as the URL query. Everything else passes unchanged;
//! after a request whose body length it cannot follow (chunked, upgrades, HTTP/2) the stream
//! stops looking and passes the rest of the connection through.

use super::params::QUERY_IN_BODY_HEADER;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// The largest request head read (Go's `http.DefaultMaxHeaderBytes`, plus room for the request
/// line); a longer one passes through to hyper, which refuses it.
const HEAD_LIMIT: usize = (1 << 20) + 4096;
/// Targets longer than this are moved into the body; hyper accepts up to 65,534 bytes.
const MOVE_OVER: usize = 32 << 10;
const READ_CHUNK: usize = 16 << 10;

/// A TCP listener whose connections move long GET query strings into the body.
pub struct LongUriListener {
    inner: TcpListener,
}

impl LongUriListener {
    /// Wraps `inner`.
    pub fn new(inner: TcpListener) -> Self {
        Self { inner }
    }
}

impl axum::serve::Listener for LongUriListener {
    type Io = LongUriStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => return (LongUriStream::new(stream), addr),
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::error!(error = %e, "accepting an HTTP connection");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    /// Collecting the next request head.
    Head,
    /// Passing this many body bytes of the current request.
    Body(u64),
    /// No longer following requests.
    Passthrough,
}

/// A connection's byte stream with long GET query strings moved into the body.
pub struct LongUriStream<S> {
    inner: S,
    mode: Mode,
    /// Bytes read from `inner`, not yet examined.
    input: Vec<u8>,
    /// How much of `input` is known to hold no head end.
    scanned: usize,
    /// Bytes ready for hyper, from `out_pos` on.
    out: Vec<u8>,
    out_pos: usize,
    inner_eof: bool,
}

impl<S> LongUriStream<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            mode: Mode::Head,
            input: Vec::new(),
            scanned: 0,
            out: Vec::new(),
            out_pos: 0,
            inner_eof: false,
        }
    }

    /// Moves examined bytes from `input` to `out`; false when more input is needed.
    fn advance(&mut self) -> bool {
        match self.mode {
            Mode::Passthrough => {
                if self.input.is_empty() {
                    return false;
                }
                self.out = std::mem::take(&mut self.input);
                true
            }
            Mode::Body(0) => {
                self.mode = Mode::Head;
                self.advance()
            }
            Mode::Body(n) => {
                if self.input.is_empty() {
                    return false;
                }
                let take = usize::try_from(n)
                    .unwrap_or(usize::MAX)
                    .min(self.input.len());
                self.out = self.input.drain(..take).collect();
                self.mode = Mode::Body(n - take as u64);
                true
            }
            Mode::Head => {
                let from = self.scanned.saturating_sub(3);
                if let Some(end) = find_head_end(&self.input[from..]).map(|e| e + from) {
                    self.scanned = 0;
                    let rest = self.input.split_off(end);
                    let head = std::mem::replace(&mut self.input, rest);
                    let (out, next) = rewrite(head);
                    self.out = out;
                    self.mode = next;
                    return true;
                }
                self.scanned = self.input.len();
                let give_up = self.input.len() > HEAD_LIMIT || self.inner_eof;
                if give_up && !self.input.is_empty() {
                    self.mode = Mode::Passthrough;
                    self.advance()
                } else {
                    false
                }
            }
        }
    }
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

/// The head (with its blank line) as hyper should see it, plus any body moved into it, and
/// the mode for what follows.
fn rewrite(head: Vec<u8>) -> (Vec<u8>, Mode) {
    let Ok(text) = std::str::from_utf8(&head) else {
        return (head, Mode::Passthrough);
    };
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return (head, Mode::Passthrough);
    };
    if !version.starts_with("HTTP/1.") {
        return (head, Mode::Passthrough);
    }
    let mut content_length: Option<u64> = None;
    let mut follows = true;
    let mut kept = Vec::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let Some((name, value)) = line.split_once(':') else {
            return (head, Mode::Passthrough);
        };
        let name = name.trim();
        if name.eq_ignore_ascii_case("content-length") {
            match (value.trim().parse::<u64>(), content_length) {
                (Ok(n), None) => content_length = Some(n),
                (Ok(n), Some(m)) if n == m => {}
                _ => return (head, Mode::Passthrough),
            }
            continue;
        }
        if name.eq_ignore_ascii_case("transfer-encoding")
            || name.eq_ignore_ascii_case("upgrade")
            || name.eq_ignore_ascii_case(QUERY_IN_BODY_HEADER)
        {
            follows = false;
        }
        kept.push(line);
    }
    if !follows {
        return (head, Mode::Passthrough);
    }
    let body_len = content_length.unwrap_or(0);
    let long_get = method == "GET" && target.len() > MOVE_OVER && body_len == 0;
    let Some((path, query)) = target.split_once('?').filter(|_| long_get) else {
        return (head, Mode::Body(body_len));
    };
    let mut out = Vec::with_capacity(head.len() + 128);
    out.extend_from_slice(format!("GET {path} {version}\r\n").as_bytes());
    for line in kept {
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(
        format!(
            "{QUERY_IN_BODY_HEADER}: 1\r\ncontent-length: {}\r\n\r\n",
            query.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(query.as_bytes());
    (out, Mode::Head)
}

impl<S: AsyncRead + Unpin> AsyncRead for LongUriStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        dst: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.out_pos < this.out.len() {
                let n = dst.remaining().min(this.out.len() - this.out_pos);
                dst.put_slice(&this.out[this.out_pos..this.out_pos + n]);
                this.out_pos += n;
                if this.out_pos == this.out.len() {
                    this.out.clear();
                    this.out_pos = 0;
                }
                return Poll::Ready(Ok(()));
            }
            if this.advance() {
                continue;
            }
            if this.mode == Mode::Passthrough && this.input.is_empty() {
                return Pin::new(&mut this.inner).poll_read(cx, dst);
            }
            if this.inner_eof {
                return Poll::Ready(Ok(()));
            }
            let mut chunk = [0u8; READ_CHUNK];
            let mut buf = ReadBuf::new(&mut chunk);
            match Pin::new(&mut this.inner).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) => {
                    if buf.filled().is_empty() {
                        this.inner_eof = true;
                    } else {
                        this.input.extend_from_slice(buf.filled());
                    }
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for LongUriStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn through(input: &[u8]) -> Vec<u8> {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let input = input.to_vec();
        let writer = tokio::spawn(async move {
            for piece in input.chunks(1000) {
                client.write_all(piece).await.expect("write");
            }
            client.shutdown().await.expect("shutdown");
        });
        let mut out = Vec::new();
        LongUriStream::new(server)
            .read_to_end(&mut out)
            .await
            .expect("read");
        writer.await.expect("writer");
        out
    }

    #[tokio::test]
    async fn short_requests_pass_unchanged_even_pipelined_with_bodies() {
        let input = b"GET /api/v1/query?query=up HTTP/1.1\r\nHost: x\r\n\r\n\
POST /api/v1/query HTTP/1.1\r\nContent-Length: 8\r\n\r\nquery=up\
GET /-/healthy HTTP/1.1\r\n\r\n";
        assert_eq!(through(input).await, input.to_vec());
    }

    #[tokio::test]
    async fn a_long_get_query_moves_into_the_body_and_the_next_request_follows() {
        let q = format!("query={}", "a".repeat(100_000));
        let input = format!(
            "GET /api/v1/query?{q} HTTP/1.1\r\nHost: x\r\n\r\nGET /-/ready HTTP/1.1\r\n\r\n"
        );
        let out = String::from_utf8(through(input.as_bytes()).await).expect("utf8");
        let expected = format!(
            "GET /api/v1/query HTTP/1.1\r\nHost: x\r\n{QUERY_IN_BODY_HEADER}: 1\r\ncontent-length: {}\r\n\r\n{q}GET /-/ready HTTP/1.1\r\n\r\n",
            q.len()
        );
        assert_eq!(out, expected);
    }

    #[tokio::test]
    async fn a_long_query_after_a_body_is_still_found() {
        let q = format!("match[]={}", "b".repeat(70_000));
        let input = format!(
            "POST /api/v1/series HTTP/1.1\r\ncontent-length: 3\r\n\r\nx=1GET /api/v1/series?{q} HTTP/1.0\r\n\r\n"
        );
        let out = String::from_utf8(through(input.as_bytes()).await).expect("utf8");
        assert!(out.starts_with("POST /api/v1/series HTTP/1.1\r\ncontent-length: 3\r\n\r\nx=1GET /api/v1/series HTTP/1.0\r\n"), "{}", &out[..200]);
        assert!(out.ends_with(&format!("content-length: {}\r\n\r\n{q}", q.len())));
    }

    #[tokio::test]
    async fn chunked_bodies_and_client_markers_stop_the_rewriting() {
        let long = format!(
            "GET /api/v1/query?query={} HTTP/1.1\r\n\r\n",
            "c".repeat(40_000)
        );
        for first in [
            "POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_string(),
            format!("GET /x HTTP/1.1\r\n{QUERY_IN_BODY_HEADER}: 1\r\n\r\n"),
        ] {
            let input = format!("{first}{long}");
            assert_eq!(through(input.as_bytes()).await, input.into_bytes());
        }
    }

    #[tokio::test]
    async fn an_endless_head_passes_through_after_the_limit_and_a_cut_one_at_eof() {
        let endless = vec![b'a'; HEAD_LIMIT + 10];
        assert_eq!(through(&endless).await, endless);
        let cut = b"GET /api/v1/query?query=up HTTP/1.1\r\nHost:".to_vec();
        assert_eq!(through(&cut).await, cut);
    }
}
