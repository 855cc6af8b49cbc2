//! A fault-injecting HTTP proxy on loopback, in front of a real storage server (Swift's
//! proxy-server, moto's S3): it forwards each request unchanged (the Host header too, so
//! S3 signatures still hold) on a fresh upstream connection, one request per client
//! connection, and applies the first matching rule of its script: answer an error status
//! (with `Retry-After`), reset the connection, cut the response body short under its full
//! Content-Length, stall in the middle of the body until the proxy is dropped, or delay
//! (a rule that delays every request adds latency). It counts the requests of each method
//! in flight at once (one request per connection, so that is also the connections).
//! [`TcpRelay`] delays any TCP protocol (SSH) and counts its connections.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// What the proxy does to a matching request.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Answer this status (500, 502, 503...) without forwarding.
    Status(u16),
    /// Answer this status (429, 503) with `Retry-After: seconds`, without forwarding.
    RetryAfter(u16, u64),
    /// Read the request, then reset the connection (RST) without answering.
    Reset,
    /// Forward, then send the response head (its full Content-Length) and half of the
    /// body, and close.
    Truncate,
    /// Forward, then send the response head and half of the body, and nothing more until
    /// the proxy is dropped.
    Stall,
    /// Wait, then forward normally.
    Delay(Duration),
}

/// A line of the script: requests whose method is `method` (any if empty) and whose
/// target (path and query) contains `target`; the first `skip` of them pass, the next
/// `times` (all if `None`) get the fault.
#[derive(Clone, Debug)]
pub struct Rule {
    method: String,
    target: String,
    skip: usize,
    times: Option<usize>,
    fault: Fault,
    seen: usize,
    hits: usize,
}

/// A rule that applies `fault` once to the first matching request.
pub fn rule(method: &str, target: &str, fault: Fault) -> Rule {
    Rule {
        method: method.to_string(),
        target: target.to_string(),
        skip: 0,
        times: Some(1),
        fault,
        seen: 0,
        hits: 0,
    }
}

impl Rule {
    /// Applies the fault `n` times.
    pub fn times(mut self, n: usize) -> Rule {
        self.times = Some(n);
        self
    }
    /// Applies the fault to every matching request.
    pub fn always(mut self) -> Rule {
        self.times = None;
        self
    }
    /// Lets the first `n` matching requests through.
    pub fn skip(mut self, n: usize) -> Rule {
        self.skip = n;
        self
    }
}

#[derive(Default)]
struct Script {
    rules: Vec<Rule>,
    /// `METHOD target` of every request, in order, with the fault applied.
    log: Vec<String>,
    /// Requests of each method in flight now, and the most at once so far.
    in_flight: HashMap<String, (usize, usize)>,
}

impl Script {
    fn pick(&mut self, method: &str, target: &str) -> Option<Fault> {
        let mut chosen = None;
        for r in &mut self.rules {
            if (!r.method.is_empty() && r.method != method) || !target.contains(&r.target) {
                continue;
            }
            r.seen += 1;
            if r.seen > r.skip && r.times.is_none_or(|t| r.hits < t) {
                r.hits += 1;
                chosen = Some(r.fault.clone());
                break;
            }
        }
        self.log.push(format!("{method} {target} {chosen:?}"));
        chosen
    }
}

/// The proxy; it stops when dropped.
pub struct Proxy {
    /// `http://127.0.0.1:PORT`, to give ferrodup instead of the server's URL.
    pub url: String,
    script: Arc<Mutex<Script>>,
    stop: Arc<AtomicBool>,
    port: u16,
}

impl Proxy {
    /// Starts a proxy to `upstream` (`http://host:port[/...]`; the path is ignored).
    pub fn start(upstream: &str) -> Proxy {
        let hostport = upstream
            .strip_prefix("http://")
            .unwrap_or_else(|| panic!("the proxy forwards to http:// only, not {upstream}"))
            .split('/')
            .next()
            .unwrap()
            .to_string();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let script = Arc::new(Mutex::new(Script::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (script.clone(), stop.clone());
        thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (s, st, up) = (s.clone(), st.clone(), hostport.clone());
                thread::spawn(move || {
                    let _ = serve(conn, &up, &s, &st);
                });
            }
        });
        Proxy {
            url: format!("http://127.0.0.1:{port}"),
            script,
            stop,
            port,
        }
    }

    /// Appends a rule to the script.
    pub fn add(&self, r: Rule) {
        self.script.lock().unwrap().rules.push(r);
    }

    /// Removes every rule: requests pass unchanged from now on.
    pub fn clear(&self) {
        self.script.lock().unwrap().rules.clear();
    }

    /// How many requests got each rule's fault, in script order.
    pub fn hits(&self) -> Vec<usize> {
        self.script
            .lock()
            .unwrap()
            .rules
            .iter()
            .map(|r| r.hits)
            .collect()
    }

    /// The most requests of `method` (GET, PUT...) that were in flight at once.
    pub fn peak(&self, method: &str) -> usize {
        let s = self.script.lock().unwrap();
        s.in_flight.get(method).map_or(0, |&(_, peak)| peak)
    }

    /// Every request so far, as `METHOD target Some(fault)|None`.
    pub fn log(&self) -> Vec<String> {
        self.script.lock().unwrap().log.clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so that it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Reads a message head (request or response) up to the blank line; `None` at EOF.
fn read_head(r: &mut impl BufRead) -> std::io::Result<Option<Vec<String>>> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        let line = line.trim_end_matches(['\r', '\n']).to_string();
        if line.is_empty() {
            return Ok(Some(lines));
        }
        lines.push(line);
    }
}

fn header<'a>(head: &'a [String], name: &str) -> Option<&'a str> {
    head.iter().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// The head with `Connection: close` instead of any Connection or Expect header.
fn closing(head: &[String]) -> Vec<u8> {
    let mut out = String::new();
    for (i, l) in head.iter().enumerate() {
        let name = l.split(':').next().unwrap_or("").trim();
        if i > 0 && (name.eq_ignore_ascii_case("connection") || name.eq_ignore_ascii_case("expect"))
        {
            continue;
        }
        out.push_str(l);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    out.into_bytes()
}

/// Reads a message body as sent (chunked, Content-Length, or for a response without
/// either, up to EOF), to forward it unchanged. (Servers may keep the connection open
/// despite `Connection: close`, so EOF alone does not end a body.)
fn read_body(r: &mut impl BufRead, head: &[String], response: bool) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    if header(head, "transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut size_line = String::new();
            r.read_line(&mut size_line)?;
            body.extend_from_slice(size_line.as_bytes());
            let size = usize::from_str_radix(size_line.trim().split(';').next().unwrap(), 16)
                .map_err(std::io::Error::other)?;
            let mut chunk = vec![0u8; size + 2];
            r.read_exact(&mut chunk)?;
            body.extend_from_slice(&chunk);
            if size == 0 {
                return Ok(body);
            }
        }
    }
    let len = match header(head, "content-length").and_then(|v| v.parse().ok()) {
        Some(len) => len,
        None if response => {
            r.read_to_end(&mut body)?;
            return Ok(body);
        }
        None => 0,
    };
    body.resize(len, 0);
    r.read_exact(&mut body)?;
    Ok(body)
}

fn reset(conn: &TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on a socket this function borrows, with a correctly sized value.
    unsafe {
        libc::setsockopt(
            conn.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

/// Counts a request in flight until dropped.
struct InFlight<'a> {
    script: &'a Mutex<Script>,
    method: String,
}

impl<'a> InFlight<'a> {
    fn new(script: &'a Mutex<Script>, method: &str) -> Self {
        let mut s = script.lock().unwrap();
        let (now, peak) = s.in_flight.entry(method.to_string()).or_default();
        *now += 1;
        *peak = (*peak).max(*now);
        InFlight {
            script,
            method: method.to_string(),
        }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut s = self.script.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((now, _)) = s.in_flight.get_mut(&self.method) {
            *now -= 1;
        }
    }
}

fn serve(
    conn: TcpStream,
    upstream: &str,
    script: &Mutex<Script>,
    stop: &AtomicBool,
) -> std::io::Result<()> {
    let mut client = BufReader::new(conn.try_clone()?);
    let mut out = conn.try_clone()?;
    let Some(head) = read_head(&mut client)? else {
        return Ok(());
    };
    if header(&head, "expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue")) {
        out.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    }
    let body = read_body(&mut client, &head, false)?;
    let mut words = head[0].split_whitespace();
    let method = words.next().unwrap_or("").to_string();
    let target = words.next().unwrap_or("").to_string();
    let fault = script.lock().unwrap().pick(&method, &target);
    // Counted until just before the answer goes out: once the client has it, it may start
    // its next request, which must not find this one still counted.
    let counted = InFlight::new(script, &method);
    let answer = |out: &mut TcpStream, status: u16, retry_after: Option<u64>| {
        let text = format!("fault injected by the test proxy: HTTP {status}\n");
        let text = if method == "HEAD" { "" } else { text.as_str() };
        let mut msg = format!(
            "HTTP/1.1 {status} Injected\r\nContent-Length: {}\r\nContent-Type: text/plain\r\nConnection: close\r\n",
            text.len()
        );
        if let Some(s) = retry_after {
            msg.push_str(&format!("Retry-After: {s}\r\n"));
        }
        msg.push_str("\r\n");
        msg.push_str(text);
        out.write_all(msg.as_bytes())
    };
    match &fault {
        Some(Fault::Status(s)) => {
            drop(counted);
            return answer(&mut out, *s, None);
        }
        Some(Fault::RetryAfter(s, secs)) => {
            drop(counted);
            return answer(&mut out, *s, Some(*secs));
        }
        Some(Fault::Reset) => {
            drop(counted);
            reset(&conn);
            return Ok(());
        }
        Some(Fault::Delay(d)) => thread::sleep(*d),
        _ => {}
    }
    let mut up = TcpStream::connect(upstream)?;
    up.write_all(&closing(&head))?;
    up.write_all(&body)?;
    let mut up = BufReader::new(up);
    let Some(rhead) = read_head(&mut up)? else {
        return Ok(());
    };
    let status = rhead[0].split_whitespace().nth(1).unwrap_or("");
    let rbody = if method == "HEAD" || ["204", "304"].contains(&status) {
        Vec::new()
    } else {
        read_body(&mut up, &rhead, true)?
    };
    drop(counted);
    out.write_all(&closing(&rhead))?;
    match fault {
        Some(Fault::Truncate) => {
            out.write_all(&rbody[..rbody.len() / 2])?;
            out.flush()?;
            out.shutdown(Shutdown::Both)
        }
        Some(Fault::Stall) => {
            out.write_all(&rbody[..rbody.len() / 2])?;
            out.flush()?;
            while !stop.load(Ordering::SeqCst) {
                thread::sleep(Duration::from_millis(50));
            }
            Ok(())
        }
        _ => {
            out.write_all(&rbody)?;
            out.flush()
        }
    }
}

/// A TCP relay on loopback in front of a server of any protocol (sshd): it adds `delay`
/// to every byte in each direction (a round trip of twice that, without limiting
/// throughput) and counts the connections open at once.
pub struct TcpRelay {
    pub port: u16,
    /// Connections open now, and the most at once so far.
    open: Arc<Mutex<(usize, usize)>>,
    stop: Arc<AtomicBool>,
}

impl TcpRelay {
    pub fn start(upstream_port: u16, delay: Duration) -> TcpRelay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let open = Arc::new(Mutex::new((0, 0)));
        let stop = Arc::new(AtomicBool::new(false));
        let (o, st) = (open.clone(), stop.clone());
        thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = conn else { continue };
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream_port)) else {
                    continue;
                };
                {
                    let mut o = o.lock().unwrap();
                    o.0 += 1;
                    o.1 = o.1.max(o.0);
                }
                let o = o.clone();
                thread::spawn(move || {
                    let up = relay(&client, &server, delay);
                    let down = relay(&server, &client, delay);
                    let _ = (up.join(), down.join());
                    o.lock().unwrap().0 -= 1;
                });
            }
        });
        TcpRelay { port, open, stop }
    }

    /// The most connections that were open at once.
    pub fn peak(&self) -> usize {
        self.open.lock().unwrap().1
    }
}

impl Drop for TcpRelay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Copies what `from` sends to `to`, each piece `delay` after it arrived.
fn relay(from: &TcpStream, to: &TcpStream, delay: Duration) -> thread::JoinHandle<()> {
    let (mut from, mut to) = (from.try_clone().unwrap(), to.try_clone().unwrap());
    let (tx, rx) = std::sync::mpsc::channel::<(std::time::Instant, Vec<u8>)>();
    let writer = thread::spawn(move || {
        for (at, data) in rx {
            thread::sleep((at + delay).saturating_duration_since(std::time::Instant::now()));
            if to.write_all(&data).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
    thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 20];
        loop {
            match std::io::Read::read(&mut from, &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx
                        .send((std::time::Instant::now(), buf[..n].to_vec()))
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
        drop(tx);
        let _ = writer.join();
    })
}
