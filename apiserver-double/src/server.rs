//! The HTTP/1.1 side: an accept loop on a loopback port serving each
//! connection with hyper, turning requests into handler calls, applying
//! injected faults and delays, enforcing the request body limit, logging
//! every request, and streaming watches. Stopping the server aborts the
//! accept loop and every open connection, as a killed API server would.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

use crate::faults::{Faults, RequestRecord, fault_error};
use crate::handler::{self, ParsedRequest};
use crate::route::{self, Query, Target, Verb};
use crate::status::ApiError;
use crate::store::{Store, WatchOptions};
use crate::watch_stream::{self, StreamSettings};

/// The real server's limit on a request body ("Request entity too large: limit is 3145728").
pub const DEFAULT_MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

type Body = BoxBody<Bytes, Infallible>;

/// State shared by the server tasks and the test's handle.
pub struct Shared {
    pub store: Arc<Mutex<Store>>,
    pub faults: Mutex<Faults>,
    pub log: Mutex<Vec<RequestRecord>>,
    pub bookmark_interval: Mutex<Duration>,
    pub max_body_bytes: usize,
}

/// Binds `addr` and serves until the returned task is aborted.
pub async fn serve(
    addr: SocketAddr,
    shared: Arc<Shared>,
) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let task = tokio::spawn(async move {
        // Dropping the set (when this task is aborted) aborts every connection.
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    let _ = stream.set_nodelay(true);
                    let shared = shared.clone();
                    connections.spawn(async move {
                        let service = hyper::service::service_fn(move |req| {
                            let shared = shared.clone();
                            async move { Ok::<_, Infallible>(respond(shared, req).await) }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
    });
    Ok((local, task))
}

fn full(bytes: Bytes) -> Body {
    Full::new(bytes).boxed()
}

fn json_response(code: u16, body: Bytes) -> Response<Body> {
    let mut response = Response::new(full(body));
    *response.status_mut() =
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn error_response(error: &ApiError) -> Response<Body> {
    let mut response = json_response(error.code, handler::to_bytes(&error.to_status()));
    if error.code == 429 {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

async fn respond(shared: Arc<Shared>, request: Request<Incoming>) -> Response<Body> {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let query_text = request.uri().query().unwrap_or_default().to_string();
    let header = |name: header::HeaderName| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let (content_type, accept, user_agent) = (
        header(header::CONTENT_TYPE),
        header(header::ACCEPT),
        header(header::USER_AGENT),
    );
    let declared_length = header(header::CONTENT_LENGTH).parse::<usize>().ok();
    let query = Query::parse(Some(&query_text));
    let mut record = RequestRecord {
        verb: Verb::Discovery,
        method: method.to_string(),
        path: path.clone(),
        query: query_text.clone(),
        group: String::new(),
        plural: String::new(),
        namespace: String::new(),
        name: String::new(),
        subresource: String::new(),
        field_manager: query.get("fieldManager").unwrap_or_default().to_string(),
        code: 0,
    };

    let outcome = async {
        let target = route::parse_path(&path)?;
        if let Target::Resource(r) = &target {
            record.verb = route::verb(&method, r, &query)?;
            record.group = r.key.group.clone();
            record.plural = r.key.plural.clone();
            record.namespace = r.namespace.clone();
            record.name = r.name.clone().unwrap_or_default();
            record.subresource = r.subresource.clone();
        }
        let delay = {
            let mut faults = shared.faults.lock().expect("faults lock");
            if let Some(code) = faults.take(
                record.verb,
                Some(record.plural.as_str()).filter(|p| !p.is_empty()),
            ) {
                return Err(fault_error(code));
            }
            faults.delay
        };
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        if declared_length.is_some_and(|l| l > shared.max_body_bytes) {
            return Err(body_too_large(shared.max_body_bytes));
        }
        let body = Limited::new(request.into_body(), shared.max_body_bytes)
            .collect()
            .await
            .map_err(|_| body_too_large(shared.max_body_bytes))?
            .to_bytes();
        let parsed = ParsedRequest {
            query: query.clone(),
            content_type,
            accept,
            user_agent,
            body,
        };
        if record.field_manager.is_empty() && record.verb.is_write() {
            record.field_manager = parsed.field_manager();
        }
        match &target {
            Target::Resource(r) if record.verb == Verb::Watch => watch(&shared, &parsed, r),
            Target::Resource(r) => {
                let (code, body) = handler::resource(&shared.store, &parsed, r, record.verb)?;
                Ok(json_response(code, body))
            }
            other => {
                if method != http::Method::GET {
                    return Err(ApiError::method_not_allowed("discovery is read-only"));
                }
                let body = handler::discovery(&shared.store.lock().expect("store lock"), other)?;
                Ok(json_response(200, body))
            }
        }
    }
    .await;

    let response = outcome.unwrap_or_else(|e| error_response(&e));
    record.code = response.status().as_u16();
    tracing::debug!(
        method = %record.method, path = %record.path, query = %record.query, code = record.code,
        "apiserver-double request"
    );
    shared.log.lock().expect("log lock").push(record);
    response
}

fn body_too_large(limit: usize) -> ApiError {
    ApiError::too_large(format!("Request entity too large: limit is {limit}"))
}

fn watch(
    shared: &Arc<Shared>,
    request: &ParsedRequest,
    target: &route::ResourceRef,
) -> Result<Response<Body>, ApiError> {
    let mut store = shared.store.lock().expect("store lock");
    let rt = store.resource(&target.key)?;
    let filter = handler::filter(&rt, target, &request.query)?;
    let bookmarks = request.query.flag("allowWatchBookmarks");
    let send_initial_events = request.query.flag("sendInitialEvents");
    if send_initial_events && !bookmarks {
        return Err(ApiError::invalid(
            "ListOptions",
            "",
            "sendInitialEvents",
            "Forbidden: sendInitialEvents requires setting allowWatchBookmarks=true",
        ));
    }
    let options = WatchOptions {
        resource_version: request.query.get("resourceVersion").map(str::to_string),
        send_initial_events,
    };
    let (watcher, messages) = store.watch(&rt, filter, &options)?;
    drop(store);
    let timeout = request
        .query
        .number("timeoutSeconds")?
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(1800));
    let settings = StreamSettings {
        bookmarks,
        bookmark_interval: *shared.bookmark_interval.lock().expect("settings lock"),
        timeout,
        metadata_only: request.metadata_only(),
    };
    let lines = watch_stream::spawn(shared.store.clone(), rt, watcher, messages, settings);
    let frames = stream::unfold(lines, |mut lines| async move {
        lines
            .recv()
            .await
            .map(|line| (Ok::<_, Infallible>(Frame::data(line)), lines))
    });
    let mut response = Response::new(StreamBody::new(frames).boxed());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(response)
}
