//! A local Lambda runtime API for tests: it hands out the given invocations on
//! `GET /2018-06-01/runtime/invocation/next`, captures what the function posts to
//! `.../{request id}/response` and `.../error`, and, once every invocation is answered,
//! drops the next `next` request so `lambda_runtime::run` returns (with a transport
//! error). One request per connection (`Connection: close`).

use std::collections::VecDeque;
use std::time::SystemTime;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// An invocation to hand out.
pub struct Invocation {
    /// `Lambda-Runtime-Aws-Request-Id`.
    pub request_id: String,
    /// `Lambda-Runtime-Deadline-Ms`: milliseconds since the epoch.
    pub deadline_ms: u64,
    /// The event.
    pub body: String,
}

/// What the function posted for an invocation.
#[derive(Debug)]
pub struct Answer {
    /// The request id in the path.
    pub request_id: String,
    /// Posted to `.../error` rather than `.../response`.
    pub error: bool,
    /// The body.
    pub body: String,
    /// When it arrived.
    pub at: SystemTime,
}

/// A running local runtime API.
pub struct LocalApi {
    /// `host:port`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub address: String,
    answers: mpsc::UnboundedReceiver<Answer>,
}

impl LocalApi {
    /// Starts serving `invocations` in order.
    pub async fn start(invocations: Vec<Invocation>) -> LocalApi {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let (tx, answers) = mpsc::unbounded_channel();
        let mut pending = VecDeque::from(invocations);
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let Some((method, path, body)) = read_request(&mut s).await else {
                    continue;
                };
                if method == "GET" && path == "/2018-06-01/runtime/invocation/next" {
                    let Some(i) = pending.pop_front() else {
                        // No more work: drop the connection, ending the runtime's loop.
                        continue;
                    };
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                         Lambda-Runtime-Aws-Request-Id: {}\r\n\
                         Lambda-Runtime-Deadline-Ms: {}\r\n\
                         Lambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:eu-west-1:111122223333:function:redress\r\n\
                         Content-Length: {}\r\nConnection: close\r\n\r\n",
                        i.request_id,
                        i.deadline_ms,
                        i.body.len()
                    );
                    let _ = s.write_all(head.as_bytes()).await;
                    let _ = s.write_all(i.body.as_bytes()).await;
                } else if let Some((id, kind)) = path
                    .strip_prefix("/2018-06-01/runtime/invocation/")
                    .and_then(|rest| rest.split_once('/'))
                    .filter(|_| method == "POST")
                {
                    let _ = tx.send(Answer {
                        request_id: id.to_string(),
                        error: kind == "error",
                        body,
                        at: SystemTime::now(),
                    });
                    let _ = s
                        .write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                        .await;
                } else {
                    let _ = s
                        .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                        .await;
                }
                let _ = s.shutdown().await;
            }
        });
        LocalApi { address, answers }
    }

    /// Every answer received so far.
    pub fn answers(&mut self) -> Vec<Answer> {
        let mut out = Vec::new();
        while let Ok(a) = self.answers.try_recv() {
            out.push(a);
        }
        out
    }
}

/// Reads one request: method, path and body (`Content-Length` framed).
async fn read_request(s: &mut TcpStream) -> Option<(String, String, String)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_string();
        let length: usize = head
            .lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.trim().parse().ok())
            .unwrap_or(0);
        if buf.len() < end + 4 + length {
            continue;
        }
        let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + length]).to_string();
        let mut line = head.lines().next()?.split(' ');
        return Some((line.next()?.to_string(), line.next()?.to_string(), body));
    }
}
