//! A minimal DNS A-record client, so the test process can ask the test's dnsmasq directly
//! (from the root namespace) without `dig`, e.g. to wait until a record change is served.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use crate::error::{Error, Result};

/// Asks `server` for the A records of `name`; NXDOMAIN and empty answers give an empty list.
pub fn lookup_a(server: SocketAddr, name: &str, timeout: Duration) -> Result<Vec<Ipv4Addr>> {
    let bad = |reason: String| Error::Dns {
        server: server.to_string(),
        reason,
    };
    let io = |e: std::io::Error| bad(e.to_string());
    let sock = UdpSocket::bind(("0.0.0.0", 0)).map_err(io)?;
    sock.set_read_timeout(Some(timeout)).map_err(io)?;
    sock.connect(server).map_err(io)?;
    let id = (std::process::id() as u16) ^ 0x5a5a;
    sock.send(&query(id, name)?).map_err(io)?;
    let mut buf = [0u8; 1500];
    loop {
        let n = sock.recv(&mut buf).map_err(io)?;
        let msg = buf.get(..n).unwrap_or_default();
        if msg.get(..2) == Some(&id.to_be_bytes()[..]) {
            return parse(msg).map_err(bad);
        }
    }
}

fn query(id: u16, name: &str) -> Result<Vec<u8>> {
    let mut q = Vec::with_capacity(32 + name.len());
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]); // RD; one question
    for label in name.trim_end_matches('.').split('.') {
        let len = u8::try_from(label.len())
            .ok()
            .filter(|l| (1..64).contains(l))
            .ok_or_else(|| Error::Dns {
                server: String::new(),
                reason: format!("bad name {name:?}"),
            })?;
        q.push(len);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]); // root, type A, class IN
    Ok(q)
}

fn u16_at(msg: &[u8], at: usize) -> Result<u16, String> {
    match msg.get(at..at + 2) {
        Some(&[a, b]) => Ok(u16::from_be_bytes([a, b])),
        _ => Err(format!("truncated at byte {at}")),
    }
}

/// Skips a (possibly compressed) name starting at `at`; returns the offset after it.
fn skip_name(msg: &[u8], mut at: usize) -> Result<usize, String> {
    loop {
        let len = *msg.get(at).ok_or("truncated name")?;
        match len {
            0 => return Ok(at + 1),
            l if l & 0xc0 == 0xc0 => return Ok(at + 2),
            l => at += 1 + usize::from(l),
        }
    }
}

fn parse(msg: &[u8]) -> Result<Vec<Ipv4Addr>, String> {
    let flags = u16_at(msg, 2)?;
    match flags & 0x000f {
        0 => {}
        3 => return Ok(Vec::new()),
        rcode => return Err(format!("rcode {rcode}")),
    }
    let (qd, an) = (u16_at(msg, 4)?, u16_at(msg, 6)?);
    let mut at = 12;
    for _ in 0..qd {
        at = skip_name(msg, at)? + 4;
    }
    let mut out = Vec::new();
    for _ in 0..an {
        at = skip_name(msg, at)?;
        let (rtype, rdlen) = (u16_at(msg, at)?, usize::from(u16_at(msg, at + 8)?));
        let rdata = msg
            .get(at + 10..at + 10 + rdlen)
            .ok_or("truncated record")?;
        if let (1, &[a, b, c, d]) = (rtype, rdata) {
            out.push(Ipv4Addr::new(a, b, c, d));
        }
        at += 10 + rdlen;
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_records_with_compressed_names() {
        let mut msg = query(7, "peers").unwrap_or_default();
        msg[2] = 0x81;
        msg[3] = 0x80;
        msg[7] = 2;
        for last in [12u8, 11] {
            msg.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4, 10, 0, 0, last]);
        }
        assert_eq!(
            parse(&msg),
            Ok(vec![
                Ipv4Addr::new(10, 0, 0, 11),
                Ipv4Addr::new(10, 0, 0, 12)
            ])
        );
    }

    #[test]
    fn truncated_answers_are_errors_not_panics() {
        let mut msg = query(7, "peers").unwrap_or_default();
        msg[7] = 1;
        msg.extend_from_slice(&[0xc0, 12, 0, 1]);
        for cut in 0..msg.len() {
            let _ = parse(&msg[..cut]);
        }
        assert!(parse(&msg).is_err());
    }

    #[test]
    fn nxdomain_is_an_empty_answer() {
        let mut msg = query(7, "nope.peers").unwrap_or_default();
        msg[3] = 0x83;
        assert_eq!(parse(&msg), Ok(vec![]));
    }
}
