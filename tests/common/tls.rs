//! HTTPS in front of a loopback storage server, for the TLS options: a certificate
//! authority and a server certificate for 127.0.0.1 made with `openssl`, and a
//! TLS-terminating reverse proxy (rustls) that forwards the decrypted bytes unchanged (the
//! Host header too, so S3 signatures still hold) to the plain-HTTP server.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

/// A test certificate authority and the server certificate it signed for 127.0.0.1.
pub struct Pki {
    /// The authority's certificate (PEM), to trust.
    pub ca: PathBuf,
    /// A folder holding only the authority's certificate, for `--ssl-cacert-path`.
    pub ca_dir: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("openssl: {e}: install OpenSSL's command-line tool"));
    assert!(
        out.status.success(),
        "openssl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Pki {
    /// Makes the authority and the server certificate under `dir`.
    pub fn new(dir: &Path) -> Pki {
        std::fs::create_dir_all(dir.join("cadir")).unwrap();
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let mut ca = vec![
            "req", "-x509", "-days", "2", "-keyout", "ca.key", "-out", "ca.pem",
        ];
        ca.extend(ec);
        ca.extend([
            "-subj",
            "/CN=ferrodup test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        openssl(dir, &ca);
        let mut csr = vec!["req", "-keyout", "server.key", "-out", "server.csr"];
        csr.extend(ec);
        csr.extend(["-subj", "/CN=127.0.0.1"]);
        openssl(dir, &csr);
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
             keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                "server.ext",
                "-out",
                "server.pem",
            ],
        );
        std::fs::copy(dir.join("ca.pem"), dir.join("cadir/test-ca.pem")).unwrap();
        Pki {
            ca: dir.join("ca.pem"),
            ca_dir: dir.join("cadir"),
            cert: dir.join("server.pem"),
            key: dir.join("server.key"),
        }
    }
}

/// The proxy; it stops taking connections when dropped.
pub struct TlsProxy {
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    stop: Arc<AtomicBool>,
    port: u16,
}

impl TlsProxy {
    /// Serves HTTPS with `pki`'s server certificate, forwarding to `upstream`
    /// (`http://host:port[/...]`; the path is ignored).
    pub fn start(pki: &Pki, upstream: &str) -> TlsProxy {
        let hostport = upstream
            .strip_prefix("http://")
            .unwrap_or_else(|| panic!("the TLS proxy forwards to http:// only, not {upstream}"))
            .split('/')
            .next()
            .unwrap()
            .to_string();
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&pki.cert)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let key = PrivateKeyDer::from_pem_file(&pki.key).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = Arc::new(
            rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(certs, key)
                .unwrap(),
        );
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let st = stop.clone();
        thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (config, up, st) = (config.clone(), hostport.clone(), st.clone());
                thread::spawn(move || {
                    let _ = serve(conn, config, &up, &st);
                });
            }
        });
        TlsProxy {
            url: format!("https://127.0.0.1:{port}"),
            stop,
            port,
        }
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so that it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn idle(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

/// Pumps one connection both ways until either side closes (or the handshake fails, as
/// it does when the client does not trust the certificate).
fn serve(
    conn: TcpStream,
    config: Arc<rustls::ServerConfig>,
    upstream: &str,
    stop: &AtomicBool,
) -> std::io::Result<()> {
    let tick = Some(Duration::from_millis(5));
    conn.set_read_timeout(tick)?;
    let mut up = TcpStream::connect(upstream)?;
    up.set_read_timeout(tick)?;
    let tls = rustls::ServerConnection::new(config).map_err(std::io::Error::other)?;
    let mut client = rustls::StreamOwned::new(tls, conn);
    let mut buf = vec![0u8; 64 * 1024];
    let mut client_open = true;
    while !stop.load(Ordering::SeqCst) {
        if client_open {
            match client.read(&mut buf) {
                Ok(0) => {
                    client_open = false;
                    let _ = up.shutdown(Shutdown::Write);
                }
                Ok(n) => up.write_all(&buf[..n])?,
                Err(e) if idle(&e) => {}
                Err(e) => return Err(e),
            }
        }
        match up.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                client.write_all(&buf[..n])?;
                client.flush()?;
            }
            Err(e) if idle(&e) => {}
            Err(e) => return Err(e),
        }
    }
    client.conn.send_close_notify();
    let _ = client.flush();
    Ok(())
}
