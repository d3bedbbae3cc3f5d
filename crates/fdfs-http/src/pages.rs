//! Pages a gateway serves besides files, supplied by the process that runs
//! it: `fdfs server` has the tracker in-process and answers `/` and
//! `/status.json` with its status page. The gateway crate knows nothing of
//! the tracker; it only asks the source for a path before parsing it as a
//! file ID.

use std::sync::Arc;

use bytes::Bytes;
use hyper::header::{self, HeaderValue};

use crate::body::GatewayBody;
use crate::response::Resp;

/// One generated page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub content_type: &'static str,
    pub body: Bytes,
}

/// Answers the paths it owns (None: not mine, treat it as a file path).
/// Called on the request's task for GET and HEAD: keep it quick.
pub type PageSource = Arc<dyn Fn(&str) -> Option<Page> + Send + Sync>;

/// 200 with the page, never cached (the pages show live state).
pub(crate) fn respond(page: Page, head: bool) -> Resp {
    let len = page.body.len();
    let mut r = hyper::Response::new(if head {
        GatewayBody::empty()
    } else {
        GatewayBody::full(page.body)
    });
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(page.content_type),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}
