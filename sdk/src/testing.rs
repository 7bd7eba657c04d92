//! Helpers for testing plugin logic with plain `cargo test`, without wasm: a category table
//! built by name, and a stand-in for the host's HTTP.

use std::cell::RefCell;

use crate::http::Response;
use crate::{Categories, Category, CategoryKind};

type Responder = Box<dyn Fn(&str, &str) -> Result<Response, String>>;

thread_local! {
    static RESPONDER: RefCell<Option<Responder>> = const { RefCell::new(None) };
}

/// Answers this thread's [`crate::http::fetch`] calls with `f(method, url)`.
pub fn respond_with(f: impl Fn(&str, &str) -> Result<Response, String> + 'static) {
    RESPONDER.with(|r| *r.borrow_mut() = Some(Box::new(f)));
}

/// A 200 response with this body.
pub fn ok(body: impl Into<Vec<u8>>) -> Response {
    Response {
        status: 200,
        headers: Vec::new(),
        body: body.into(),
    }
}

#[cfg_attr(target_arch = "wasm32", allow(dead_code))]
pub(crate) fn respond(
    method: &str,
    url: &str,
    _headers: &[(&str, &str)],
) -> Result<Response, String> {
    RESPONDER.with(|r| match r.borrow().as_ref() {
        Some(f) => f(method, url),
        None => Err(format!(
            "{method} {url}: no HTTP outside patchsync; in tests, set a responder with \
             patchsync_sdk::testing::respond_with"
        )),
    })
}

/// Builds a [`Categories`] table by name, for tests.
#[derive(Debug, Default)]
pub struct CategoriesBuilder {
    list: Vec<Category>,
}

impl CategoriesBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    fn add(mut self, kind: CategoryKind, title: &str, parent: Option<&str>) -> Self {
        let parent = parent.and_then(|p| {
            self.list
                .iter()
                .position(|c| c.title == p)
                .map(|i| i as u32)
        });
        self.list.push(Category {
            id: crate::guid_from_name(title),
            kind,
            title: title.to_owned(),
            parent,
        });
        self
    }

    pub fn company(self, title: &str) -> Self {
        self.add(CategoryKind::Company, title, None)
    }

    /// A product under the company (or family) titled `parent`.
    pub fn product(self, title: &str, parent: &str) -> Self {
        self.add(CategoryKind::Product, title, Some(parent))
    }

    /// A classification, e.g. "Security Updates".
    pub fn classification(self, title: &str) -> Self {
        self.add(CategoryKind::UpdateClassification, title, None)
    }

    pub fn build(self) -> Categories {
        Categories::new(self.list)
    }
}
