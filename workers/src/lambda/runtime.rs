//! A minimal client for the Lambda Runtime API (`AWS_LAMBDA_RUNTIME_API`), which Lambda
//! serves over plain HTTP/1.1 on a local address: next invocation, response, error.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The runtime API at `host:port`.
pub struct RuntimeApi {
    /// `host:port`.
    pub address: String,
}

/// One invocation.
pub struct Invocation {
    /// `Lambda-Runtime-Aws-Request-Id`.
    pub request_id: String,
    /// The event JSON.
    pub body: String,
}

fn bad(message: impl Into<String>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message.into())
}

impl RuntimeApi {
    async fn call(
        &self,
        method: &str,
        path: &str,
        body: &str,
    ) -> std::io::Result<(Vec<(String, String)>, String)> {
        let mut stream = TcpStream::connect(&self.address).await?;
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.address,
            body.len()
        );
        stream.write_all(request.as_bytes()).await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        let text =
            String::from_utf8(raw).map_err(|_| bad("runtime API answered with non-UTF-8"))?;
        let (head, body) = text
            .split_once("\r\n\r\n")
            .ok_or_else(|| bad("runtime API answer has no header end"))?;
        let mut lines = head.lines();
        let status = lines.next().unwrap_or_default();
        if !status
            .split_whitespace()
            .nth(1)
            .is_some_and(|c| c.starts_with('2'))
        {
            return Err(bad(format!("runtime API answered {status}")));
        }
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        if headers
            .iter()
            .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"))
        {
            return Err(bad("chunked answers are not supported"));
        }
        Ok((headers, body.to_string()))
    }

    /// Waits for the next invocation.
    pub async fn next(&self) -> std::io::Result<Invocation> {
        let (headers, body) = self
            .call("GET", "/2018-06-01/runtime/invocation/next", "")
            .await?;
        let request_id = headers
            .into_iter()
            .find(|(k, _)| k == "lambda-runtime-aws-request-id")
            .map(|(_, v)| v)
            .ok_or_else(|| bad("invocation without Lambda-Runtime-Aws-Request-Id"))?;
        Ok(Invocation { request_id, body })
    }

    /// Sends the invocation's result.
    pub async fn respond(&self, request_id: &str, body: &str) -> std::io::Result<()> {
        self.call(
            "POST",
            &format!("/2018-06-01/runtime/invocation/{request_id}/response"),
            body,
        )
        .await
        .map(|_| ())
    }

    /// Reports that the invocation failed as a whole (every record comes back).
    pub async fn fail(&self, request_id: &str, message: &str) -> std::io::Result<()> {
        let body =
            serde_json::json!({"errorMessage": message, "errorType": "RedressError"}).to_string();
        self.call(
            "POST",
            &format!("/2018-06-01/runtime/invocation/{request_id}/error"),
            &body,
        )
        .await
        .map(|_| ())
    }
}
