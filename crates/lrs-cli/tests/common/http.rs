//! A minimal blocking HTTP/1.1 client over `TcpStream` and `lrs serve` as a child process.

use std::io::{BufRead, BufReader, Lines, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

/// One request with `Connection: close`; returns the status and body, or the I/O error (a
/// server killed mid-request gives one).
pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> std::io::Result<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    s.set_write_timeout(Some(Duration::from_secs(30)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    s.write_all(body)?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no end of headers"))?;
    let status = std::str::from_utf8(&out[..split])
        .ok()
        .and_then(|h| h.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other("no status line"))?;
    Ok((status, out[split + 4..].to_vec()))
}

/// The stdout lines of an `lrs serve` child after its first.
pub type ServeLines = Lines<BufReader<ChildStdout>>;

/// Starts `lrs serve --config <toml> <extra…>` on a free loopback port; returns it, its
/// address once it listens, and the rest of its stdout (read it, or the child may block on a
/// full pipe).
pub fn start_serve_with(toml: &Path, extra: &[&str]) -> (Child, String, ServeLines) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_lrs"))
        .args(["serve", "--config"])
        .arg(toml)
        .args(["--listen", "127.0.0.1:0"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn lrs serve");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first = lines.next().and_then(Result::ok).unwrap_or_default();
    let Some(addr) = first.strip_prefix("lrs serve: listening on http://") else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("unexpected first line of lrs serve: {first:?}");
    };
    let addr = addr.to_string();
    (child, addr, lines)
}

/// [`start_serve_with`] without extra flags; its stdout is drained by a thread.
pub fn start_serve(toml: &Path) -> (Child, String) {
    let (child, addr, lines) = start_serve_with(toml, &[]);
    std::thread::spawn(move || lines.for_each(drop));
    (child, addr)
}
