//! A stand-in node for proving the harness before `strata node` exists.
//!
//! `chaos-stand-in serve ADDR NAME`: a TCP server that answers each line with `NAME LINE`;
//! prints `pid=<pid> listening on ADDR` once bound.
//! `chaos-stand-in probe ADDR TIMEOUT_MS`: connects, sends `ping`, prints the answer; exits 0
//! on an answer, 1 on a timeout or error, within about TIMEOUT_MS.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["serve", addr, name] => serve(addr, name),
        ["probe", addr, ms] => probe(addr, ms),
        _ => Err("usage: chaos-stand-in serve ADDR NAME | probe ADDR TIMEOUT_MS".to_owned()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chaos-stand-in: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(addr: &str, name: &str) -> Result<(), String> {
    let listener = TcpListener::bind(addr).map_err(|e| format!("bind {addr}: {e}"))?;
    println!("pid={} listening on {addr}", std::process::id());
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let name = name.to_owned();
        std::thread::spawn(move || {
            let _ = answer(stream, &name);
        });
    }
    Ok(())
}

fn answer(stream: TcpStream, name: &str) -> std::io::Result<()> {
    let mut writer = stream.try_clone()?;
    for line in BufReader::new(stream).lines() {
        writeln!(writer, "{name} {}", line?)?;
    }
    Ok(())
}

fn probe(addr: &str, ms: &str) -> Result<(), String> {
    let addr: SocketAddr = addr.parse().map_err(|e| format!("address {addr}: {e}"))?;
    let timeout = Duration::from_millis(ms.parse().map_err(|e| format!("timeout {ms}: {e}"))?);
    let stream =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect {addr}: {e}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let mut writer = stream.try_clone().map_err(|e| e.to_string())?;
    writeln!(writer, "ping").map_err(|e| format!("send to {addr}: {e}"))?;
    let mut reply = String::new();
    BufReader::new(stream)
        .read_line(&mut reply)
        .map_err(|e| format!("read from {addr}: {e}"))?;
    if reply.is_empty() {
        return Err(format!("{addr} closed without answering"));
    }
    print!("{reply}");
    Ok(())
}
