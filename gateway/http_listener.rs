//! The HTTP port of `[metrics]`: Prometheus scrapes `/metrics`, and
//! Thunderbird fetches its autoconfig file from the same port.
//!
//! | path | answer |
//! | --- | --- |
//! | `/metrics` | [`Metrics`] in the Prometheus text format (0.0.4), or OpenMetrics when the `Accept` header asks for `application/openmetrics-text` (as Prometheus does) |
//! | `/mail/config-v1.1.xml`, `/.well-known/autoconfig/mail/config-v1.1.xml` | Thunderbird's `config-v1.1.xml`, `application/xml`, written once at start by [`client_settings::autoconfig_xml`] (a DNS name `autoconfig.<domain>` pointed here sets clients up) |
//! | anything else | `404` |
//!
//! Only `GET` and `HEAD` are answered (`405` otherwise); the query string
//! Thunderbird adds (`?emailaddress=…`) is ignored. hyper reads the
//! requests: nothing here parses HTTP. The port is bound with the others,
//! before privileges are dropped ([`HttpListener::bind`]), and closes at
//! shutdown. It serves at most [`MAX_CONNECTIONS`] connections at once
//! (more are closed at accept) and gives each [`HEADER_TIMEOUT`] to send a
//! request's head, so an idle or slow client cannot hold it.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ACCEPT, ALLOW, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tracing::debug;

use crate::client_settings;
use crate::config::Settings;
use crate::connection::stopped;
use crate::descriptors::{self, Backoff};
use crate::log_text::LogText;
use crate::metrics::{self, Metrics};

/// The most HTTP connections served at once.
pub const MAX_CONNECTIONS: usize = 16;
/// How long a client has to send a request's head (also while a kept-alive
/// connection waits for its next request).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long requests in flight at shutdown may take to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Where Thunderbird looks for its autoconfig file.
pub const AUTOCONFIG_PATHS: [&str; 2] = [
    "/mail/config-v1.1.xml",
    "/.well-known/autoconfig/mail/config-v1.1.xml",
];
/// The `Content-Type` of the autoconfig file.
pub const AUTOCONFIG_TYPE: &str = "application/xml";

/// What the port serves.
#[derive(Debug)]
struct Pages {
    metrics: Arc<Metrics>,
    autoconfig: Bytes,
}

/// The bound, not yet serving, HTTP port.
#[derive(Debug)]
pub struct HttpListener {
    listener: TcpListener,
    pages: Arc<Pages>,
}

impl HttpListener {
    /// Binds `addr`, to serve `metrics` and the autoconfig file of `settings`.
    pub async fn bind(
        addr: SocketAddr,
        metrics: Arc<Metrics>,
        settings: &Settings,
    ) -> io::Result<HttpListener> {
        let listener = TcpListener::bind(addr).await?;
        let autoconfig = Bytes::from(client_settings::autoconfig_xml(settings)?);
        Ok(HttpListener {
            listener,
            pages: Arc::new(Pages {
                metrics,
                autoconfig,
            }),
        })
    }

    /// The bound address, e.g. to learn the port of a `:0` listener.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` turns true.
    pub async fn serve(self, mut shutdown: watch::Receiver<bool>) {
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let mut backoff = Backoff::new();
        loop {
            let accepted = tokio::select! {
                accepted = self.listener.accept() => accepted,
                _ = stopped(&mut shutdown) => return,
            };
            let (tcp, peer) = match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    debug!("metrics accept failed: {}", LogText(&error));
                    // As the mail listeners: a failure of one connection
                    // is passed over, a shortage waited out.
                    if !descriptors::is_per_connection(&error) {
                        tokio::select! {
                            _ = tokio::time::sleep(backoff.next_wait()) => {}
                            _ = stopped(&mut shutdown) => return,
                        }
                    }
                    continue;
                }
            };
            backoff.reset();
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                debug!("metrics connection from {peer} closed: {MAX_CONNECTIONS} already open");
                continue;
            };
            let pages = self.pages.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                let _slot = slot;
                serve_connection(tcp, pages, shutdown).await;
            });
        }
    }
}

/// Serves one HTTP/1.1 connection; at shutdown, lets the request in flight
/// finish (within [`SHUTDOWN_GRACE`]) and closes.
async fn serve_connection(
    tcp: tokio::net::TcpStream,
    pages: Arc<Pages>,
    mut shutdown: watch::Receiver<bool>,
) {
    let service = service_fn(move |request: Request<Incoming>| {
        let response = respond(&pages, &request);
        async move { Ok::<_, Infallible>(response) }
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(TokioIo::new(tcp), service);
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => return,
        _ = stopped(&mut shutdown) => {}
    }
    connection.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, connection).await;
}

/// The answer to `request`.
fn respond<B>(pages: &Pages, request: &Request<B>) -> Response<Full<Bytes>> {
    let path = request.uri().path();
    let page = if path == "/metrics" {
        let accept = request.headers().get(ACCEPT).map(HeaderValue::as_bytes);
        Some(metrics_page(&pages.metrics, accept))
    } else if AUTOCONFIG_PATHS.contains(&path) {
        Some((AUTOCONFIG_TYPE, pages.autoconfig.clone()))
    } else {
        None
    };
    match page {
        None => plain(StatusCode::NOT_FOUND, "Not found\n"),
        Some(_) if !matches!(*request.method(), Method::GET | Method::HEAD) => {
            let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed\n");
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            response
        }
        Some((content_type, body)) => {
            let mut response = Response::new(Full::new(body));
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
            response
        }
    }
}

/// The metrics, in OpenMetrics when `accept` asks for it, else in the
/// Prometheus text format.
fn metrics_page(metrics: &Metrics, accept: Option<&[u8]>) -> (&'static str, Bytes) {
    let openmetrics = accept.is_some_and(|accept| {
        accept
            .windows(b"application/openmetrics-text".len())
            .any(|word| word.eq_ignore_ascii_case(b"application/openmetrics-text"))
    });
    if openmetrics {
        (
            metrics::OPENMETRICS_TEXT,
            Bytes::from(metrics.openmetrics_text()),
        )
    } else {
        (
            metrics::PROMETHEUS_TEXT,
            Bytes::from(metrics.prometheus_text()),
        )
    }
}

/// A short plain-text answer with `status`.
fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pages() -> Pages {
        Pages {
            metrics: Arc::new(Metrics::new()),
            autoconfig: Bytes::from_static(b"<clientConfig/>\n"),
        }
    }

    fn get(path: &str, accept: Option<&str>) -> Response<Full<Bytes>> {
        let mut request = Request::get(path);
        if let Some(accept) = accept {
            request = request.header(ACCEPT, accept);
        }
        respond(&pages(), &request.body(()).unwrap())
    }

    fn content_type(response: &Response<Full<Bytes>>) -> &str {
        response.headers()[CONTENT_TYPE].to_str().unwrap()
    }

    #[test]
    fn metrics_are_negotiated_between_the_two_text_formats() {
        let plain = get("/metrics", None);
        assert_eq!(plain.status(), StatusCode::OK);
        assert_eq!(content_type(&plain), metrics::PROMETHEUS_TEXT);
        // What Prometheus sends.
        let accept = "application/openmetrics-text;version=1.0.0;q=0.5,\
                      text/plain;version=0.0.4;q=0.4,*/*;q=0.1";
        let open = get("/metrics", Some(accept));
        assert_eq!(content_type(&open), metrics::OPENMETRICS_TEXT);
        assert_eq!(
            content_type(&get("/metrics", Some("text/plain"))),
            metrics::PROMETHEUS_TEXT
        );
    }

    #[test]
    fn autoconfig_at_both_paths_and_nothing_elsewhere() {
        for path in AUTOCONFIG_PATHS {
            let response = get(&format!("{path}?emailaddress=a%40example.com"), None);
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            assert_eq!(content_type(&response), AUTOCONFIG_TYPE);
        }
        for path in [
            "/",
            "/metrics/",
            "/mail/config-v1.1.xml/",
            "/mail/config-v1.1.xml.bak",
            "/.well-known/autoconfig/mail/",
            "/config-v1.1.xml",
        ] {
            assert_eq!(get(path, None).status(), StatusCode::NOT_FOUND, "{path}");
        }
    }

    #[test]
    fn only_get_and_head_are_answered() {
        let head = Request::head("/metrics").body(()).unwrap();
        assert_eq!(respond(&pages(), &head).status(), StatusCode::OK);
        let post = Request::post("/metrics").body(()).unwrap();
        let refused = respond(&pages(), &post);
        assert_eq!(refused.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(refused.headers()[ALLOW], "GET, HEAD");
        let delete = Request::delete("/nowhere").body(()).unwrap();
        assert_eq!(respond(&pages(), &delete).status(), StatusCode::NOT_FOUND);
    }
}
