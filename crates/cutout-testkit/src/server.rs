//! A tiny HTTP/1.1 file server on 127.0.0.1 for tests of URL inputs and model downloads: it counts
//! requests per path and can cut a response short, stay silent or trickle to simulate dropped and
//! stalled connections.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

#[derive(Clone)]
pub enum Route {
    /// 200 with these bytes.
    File(Vec<u8>),
    /// Announces the full length but sends only the first `sent` bytes, then closes.
    Cut { body: Vec<u8>, sent: usize },
    /// An error status (401, 403, 404, ...) with a short body.
    Status(u16),
    /// Reads the request and never answers (the connection stays open until the client leaves).
    Silent,
    /// 200 announcing `body`'s length, then one byte every `interval`.
    Trickle {
        body: Vec<u8>,
        interval: std::time::Duration,
    },
}

#[derive(Clone, Default)]
struct State {
    routes: HashMap<String, Route>,
    hits: HashMap<String, usize>,
}

pub struct TestServer {
    pub base: String,
    state: Arc<Mutex<State>>,
}

impl TestServer {
    pub fn start() -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let base = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let shared = shared.clone();
                std::thread::spawn(move || serve(stream, &shared));
            }
        });
        TestServer { base, state }
    }

    pub fn add(&self, path: &str, route: Route) {
        self.state
            .lock()
            .unwrap()
            .routes
            .insert(path.to_string(), route);
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn hits(&self, path: &str) -> usize {
        self.state
            .lock()
            .unwrap()
            .hits
            .get(path)
            .copied()
            .unwrap_or(0)
    }
}

fn serve(stream: TcpStream, state: &Mutex<State>) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    loop {
        let mut header = String::new();
        match reader.read_line(&mut header) {
            Ok(0) | Err(_) => break,
            Ok(_) if header == "\r\n" || header == "\n" => break,
            Ok(_) => {}
        }
    }
    let target = request_line.split_whitespace().nth(1).unwrap_or("/");
    let path = target.split('?').next().unwrap_or(target).to_string();
    let route = {
        let mut s = state.lock().unwrap();
        *s.hits.entry(path.clone()).or_default() += 1;
        s.routes.get(&path).cloned()
    };
    let mut stream = stream;
    let (status, body, sent) = match route {
        Some(Route::Silent) => {
            // Holds the connection until the client closes it.
            let mut sink = [0u8; 1];
            while matches!(std::io::Read::read(&mut reader, &mut sink), Ok(n) if n > 0) {}
            return;
        }
        Some(Route::Trickle { body, interval }) => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            for byte in body {
                std::thread::sleep(interval);
                if stream
                    .write_all(&[byte])
                    .and_then(|_| stream.flush())
                    .is_err()
                {
                    return;
                }
            }
            return;
        }
        Some(Route::File(body)) => ("200 OK".to_string(), body.clone(), body.len()),
        Some(Route::Cut { body, sent }) => ("200 OK".to_string(), body, sent),
        Some(Route::Status(code)) => (format!("{code} Refused"), b"refused".to_vec(), 7),
        None => ("404 Not Found".to_string(), b"not found".to_vec(), 9),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(&body[..sent]);
    let _ = stream.flush();
    let _ = stream.shutdown(std::net::Shutdown::Both);
}
